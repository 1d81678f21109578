// The telemetry endpoint of `shoal server`, `shoal sim` and `shoal client`
// (docs/observability.md): /metrics, and the dashboard on the first two.
#ifndef SHOAL_CLI_TELEMETRY_H_
#define SHOAL_CLI_TELEMETRY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"
#include "experiment/dashboard.h"
#include "experiment/experiment_config.h"
#include "experiment/run_metrics.h"
#include "server/serving_catalog.h"
#include "telemetry/endpoint.h"

namespace shoal::cli {

// MetricsListen is where and how an endpoint listens, and what errors call
// its settings (config keys for the server, flags for the device).
struct MetricsListen {
  std::string listen;      // HOST:PORT
  std::string token_file;  // a bearer token; required off loopback
  // Off loopback: the TLS certificate and key to serve with. Empty: off
  // loopback is refused, with `no_tls` saying how to give them.
  std::string cert_file, key_file;
  std::string no_tls;
  std::string listen_name = "'server.metrics.listen'";
  std::string token_name = "'server.metrics.token_file'";
  std::string context = "'server.metrics'";  // prefixes the endpoint's own errors
};

// ServerMetricsListen is server.metrics with the server's certificate from
// `pki_dir` (none for `shoal sim`, which serves on loopback only).
MetricsListen ServerMetricsListen(const MetricsConfig& config, const std::string& pki_dir);

// StartMetricsEndpoint serves `collectables` on `where.listen`: on loopback
// as it is; elsewhere only over TLS and with the bearer token
// (InvalidArgument naming the setting when either is missing).
absl::StatusOr<std::unique_ptr<telemetry::Endpoint>> StartMetricsEndpoint(
    const MetricsListen& where,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables);

// ServeRunTelemetry starts the endpoint of a server, federation or
// simulation: `metrics`' series and the process's, `dashboard`'s pages,
// and, read at each scrape when given, the live devices
// (shoal_clients_connected) and the serving catalog's current version
// (shoal_serving_version, 0 before any). All must outlive the endpoint.
absl::StatusOr<std::unique_ptr<telemetry::Endpoint>> ServeRunTelemetry(
    const MetricsListen& where, RunMetrics& metrics, Dashboard& dashboard,
    std::function<double()> live_devices = nullptr,
    const ServingCatalog* catalog = nullptr);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_TELEMETRY_H_
