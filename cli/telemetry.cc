// The telemetry endpoint as a config's server.metrics section or the
// device's --metrics-* flags ask for it.
#include "cli/telemetry.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/status.h"
#include "telemetry/process_metrics.h"

namespace shoal::cli {

MetricsListen ServerMetricsListen(const MetricsConfig& config, const std::string& pki_dir) {
  MetricsListen where;
  where.listen = config.listen;
  where.token_file = config.token_file;
  if (!pki_dir.empty()) {
    where.cert_file = pki_dir + "/server.pem";
    where.key_file = pki_dir + "/server.key";
  }
  where.no_tls =
      "it is served over TLS with the server's certificate, which needs "
      "`shoal server --pki-dir` (`shoal sim` serves on loopback only)";
  return where;
}

absl::StatusOr<std::unique_ptr<telemetry::Endpoint>> StartMetricsEndpoint(
    const MetricsListen& where,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  telemetry::EndpointOptions options;
  options.address = where.listen;
  if (!where.token_file.empty()) {
    SHOAL_ASSIGN_OR_RETURN(std::string token,
                           Annotate(ReadFile(where.token_file, 4096), where.token_name));
    options.bearer_token = std::string(absl::StripAsciiWhitespace(token));
    if (options.bearer_token.size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          where.token_name, " ", where.token_file, " holds a token of ",
          options.bearer_token.size(), " characters: use at least 16 (e.g. openssl rand -hex 32)"));
    }
  }
  SHOAL_ASSIGN_OR_RETURN(HostPort host, Annotate(ParseListenAddress(where.listen), where.listen_name));
  if (!IsLoopbackHost(host.host)) {
    if (where.cert_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where.listen_name, " ", where.listen, " is off loopback: ", where.no_tls));
    }
    if (options.bearer_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where.listen_name, " ", where.listen,
                                                     " is off loopback: set ", where.token_name,
                                                     " to a bearer token scrapers send"));
    }
    options.tls_cert_file = where.cert_file;
    options.tls_key_file = where.key_file;
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<telemetry::Endpoint> endpoint,
                         Annotate(telemetry::Endpoint::Start(options, std::move(collectables)),
                                  where.context));
  spdlog::info("metrics on {}/metrics{}", endpoint->url(),
               options.bearer_token.empty() ? "" : " (bearer token required)");
  return endpoint;
}

absl::StatusOr<std::unique_ptr<telemetry::Endpoint>> ServeRunTelemetry(
    const MetricsListen& where, RunMetrics& metrics, Dashboard& dashboard,
    std::function<double()> live_devices, const ServingCatalog* catalog) {
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables = {
      metrics.registry(), telemetry::ProcessMetrics()};
  if (live_devices) collectables.push_back(metrics.ConnectedClients(std::move(live_devices)));
  if (catalog != nullptr) {
    collectables.push_back(telemetry::CollectAtScrape([catalog] {
      const std::optional<ModelRecord> current = catalog->Current();
      return std::vector<prometheus::MetricFamily>{telemetry::OneValueFamily(
          "shoal_serving_version", "The serving version devices are offered (0: none yet)",
          prometheus::MetricType::Gauge,
          current ? static_cast<double>(current->version) : 0.0)};
    }));
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<telemetry::Endpoint> endpoint,
                         StartMetricsEndpoint(where, std::move(collectables)));
  SHOAL_RETURN_IF_ERROR(dashboard.Serve(*endpoint));
  spdlog::info("dashboard on {}/", endpoint->url());
  return endpoint;
}

}  // namespace shoal::cli
