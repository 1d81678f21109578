// Listening addresses: "host:port" as the server's config key, its
// --address flag and GrpcServer::Start take it, checked once, here, so a
// port that does not fit 16 bits is refused rather than wrapped by gRPC.
#ifndef SHOAL_COMMON_NET_ADDRESS_H_
#define SHOAL_COMMON_NET_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// HostPort: a parsed listening address. `host` is a DNS name, a dotted IPv4
// address or an IPv6 address (without its brackets).
struct HostPort {
  std::string host;
  int port = 0;  // 0..65535; 0 asks the OS for a free port
};

// ParseListenAddress parses "HOST:PORT", "[IPV6]:PORT" included. PORT is 1
// to 5 decimal digits, at most 65535 (0 picks a free port); HOST is a name
// of letters, digits, '-' and '.', a dotted IPv4 address, or a bracketed
// IPv6 address; "0.0.0.0" or "[::]" listen on every interface.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(HostPort hp, ParseListenAddress("127.0.0.1:50051"));
//
// Errors: InvalidArgument saying what is wrong (an empty, non-numeric or
// out-of-range port, a missing or malformed host); a long value is shown
// cut short. Callers name the key or flag (Annotate).
absl::StatusOr<HostPort> ParseListenAddress(absl::string_view address);

// IsLoopbackHost: `host` (as HostPort::host has it) names this machine
// only: "localhost", "::1" or an address in 127.0.0.0/8.
bool IsLoopbackHost(absl::string_view host);

// ValidateListenAddress is ParseListenAddress's verdict alone.
absl::Status ValidateListenAddress(absl::string_view address);

}  // namespace shoal

#endif  // SHOAL_COMMON_NET_ADDRESS_H_
