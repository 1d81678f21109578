#include "common/net_address.h"

#include <arpa/inet.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/quote.h"

namespace shoal {
namespace {

bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (const char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '.')
      return false;
  }
  return host.front() != '-' && host.front() != '.';
}

}  // namespace

absl::StatusOr<HostPort> ParseListenAddress(absl::string_view address) {
  const std::string shown = QuoteForMessage(address);
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown, " is not HOST:PORT (e.g. 127.0.0.1:50051 or [::]:50051)"));
  }
  absl::string_view host = address.substr(0, colon);
  const absl::string_view port_text = address.substr(colon + 1);
  if (port_text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, " has no port after ':'"));
  }
  // Digits only (no sign, no spaces) and at most five of them, so nothing
  // that would wrap modulo 2^16 or 2^32 gets as far as a number.
  bool digits = port_text.size() <= 5;
  for (const char c : port_text)
    digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
  int port = 0;
  if (!digits || !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown,
                     ": the port must be a number from 0 to 65535 (0 picks a "
                     "free port), got ",
                     QuoteForMessage(port_text, 16)));
  }
  HostPort out;
  out.port = port;
  if (!host.empty() && host.front() == '[') {
    in6_addr v6;
    if (host.size() < 3 || host.back() != ']' ||
        inet_pton(AF_INET6,
                  std::string(host.substr(1, host.size() - 2)).c_str(),
                  &v6) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          shown, ": the host in brackets must be an IPv6 address"));
    }
    out.host = std::string(host.substr(1, host.size() - 2));
    return out;
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown,
        " has no host: use 0.0.0.0 or [::] to listen on every interface"));
  }
  if (host.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown, ": put an IPv6 host in brackets, e.g. [::1]:50051"));
  }
  if (!IsHostName(host)) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown,
                     ": the host must be a name (letters, digits, '-', '.') or "
                     "an IP address"));
  }
  // A host of digits and dots must be a whole IPv4 address ("1.2.3" or
  // "300.1.1.1" would otherwise be looked up as a name).
  const bool numeric =
      host.find_first_not_of("0123456789.") == absl::string_view::npos;
  in_addr v4;
  if (numeric && inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, ": the host is not a valid IPv4 address"));
  }
  out.host = std::string(host);
  return out;
}

absl::Status ValidateListenAddress(absl::string_view address) {
  return ParseListenAddress(address).status();
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace shoal
