// The telemetry endpoint as the config's server.metrics section asks for
// it, for `shoal server` and `shoal sim`.
#include "cli/telemetry.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/status.h"

namespace shoal::cli {

// StartMetricsEndpoint serves `collectables` as server.metrics says: on
// loopback as it is; elsewhere over TLS with the server's certificate from
// `pki_dir` and the bearer token in token_file.
absl::StatusOr<std::unique_ptr<telemetry::Endpoint>> StartMetricsEndpoint(
    const MetricsConfig& config, const std::string& pki_dir,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  telemetry::EndpointOptions options;
  options.address = config.listen;
  if (!config.token_file.empty()) {
    SHOAL_ASSIGN_OR_RETURN(std::string token,
                           Annotate(ReadFile(config.token_file, 4096), "'server.metrics.token_file'"));
    options.bearer_token = std::string(absl::StripAsciiWhitespace(token));
    if (options.bearer_token.size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'server.metrics.token_file' ", config.token_file,
          " holds a token of ", options.bearer_token.size(),
          " characters: use at least 16 (e.g. openssl rand -hex 32)"));
    }
  }
  SHOAL_ASSIGN_OR_RETURN(HostPort where, ParseListenAddress(config.listen));
  if (!IsLoopbackHost(where.host)) {
    if (pki_dir.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'server.metrics.listen' ", config.listen,
          " is off loopback: it is served over TLS with the server's certificate, which needs "
          "`shoal server --pki-dir` (`shoal sim` serves on loopback only)"));
    }
    if (options.bearer_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'server.metrics.listen' ", config.listen,
          " is off loopback: set 'server.metrics.token_file' to a bearer token scrapers send"));
    }
    options.tls_cert_file = pki_dir + "/server.pem";
    options.tls_key_file = pki_dir + "/server.key";
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<telemetry::Endpoint> endpoint,
                         Annotate(telemetry::Endpoint::Start(options, std::move(collectables)),
                                  "'server.metrics'"));
  spdlog::info("metrics on {}/metrics{}", endpoint->url(),
               options.bearer_token.empty() ? "" : " (bearer token required)");
  return endpoint;
}

}  // namespace shoal::cli
