// The telemetry endpoint of `shoal server` and `shoal sim`
// (docs/observability.md): /metrics and the dashboard.
#ifndef SHOAL_CLI_TELEMETRY_H_
#define SHOAL_CLI_TELEMETRY_H_

#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"
#include "experiment/experiment_config.h"
#include "telemetry/endpoint.h"

namespace shoal::cli {

// StartMetricsEndpoint serves `collectables` as server.metrics says: on
// loopback as it is; elsewhere over TLS with the server's certificate from
// `pki_dir` and the bearer token in token_file (InvalidArgument naming the
// key when either is missing).
absl::StatusOr<std::unique_ptr<telemetry::Endpoint>> StartMetricsEndpoint(
    const MetricsConfig& config, const std::string& pki_dir,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_TELEMETRY_H_
