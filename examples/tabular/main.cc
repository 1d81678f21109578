// tabular: each config run twice with virtual clients, federated (as the
// config says) and centrally (one client holding all the training data; the
// same model, rounds, epochs and learning rate), then the final test metrics
// side by side. Public API only.
//
// Usage: tabular OUTPUT_DIR CONFIG.json [CONFIG.json ...]
// Exit 0 when every run finished, 1 when one failed, 2 on bad input.
#include <cstdio>
#include <string>
#include <vector>

#include "shoal/config.h"
#include "shoal/simulation.h"
#include "shoal/status.h"

namespace {

// FinalMetrics runs `config` and returns the last round's test metrics.
absl::StatusOr<shoal::Metrics> FinalMetrics(const shoal::ExperimentConfig& config) {
  SHOAL_ASSIGN_OR_RETURN(shoal::SimulationResult result, shoal::RunSimulation(config));
  const shoal::RoundRecord& last = result.history.back();
  if (!last.server_eval) {
    return absl::FailedPreconditionError("the config turns server.evaluate off");
  }
  return last.server_eval->metrics;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR CONFIG.json [CONFIG.json ...]\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  std::vector<std::string> lines;
  for (int i = 2; i < argc; ++i) {
    absl::StatusOr<shoal::ExperimentConfig> federated = shoal::LoadExperimentConfig(argv[i]);
    if (!federated.ok()) {
      std::fprintf(stderr, "%s\n", std::string(federated.status().message()).c_str());
      return 2;
    }
    federated->output_dir = out + "/" + federated->name + "-federated";
    shoal::ExperimentConfig central = *federated;
    central.output_dir = out + "/" + federated->name + "-central";
    central.partition.scheme = shoal::PartitionScheme::kIid;
    central.partition.num_partitions = 1;
    central.coordinator.min_fit_clients = 1;
    central.coordinator.min_available_clients = 1;
    central.coordinator.sampling.min_clients = 1;
    absl::StatusOr<shoal::Metrics> fed = FinalMetrics(*federated);
    absl::StatusOr<shoal::Metrics> cen = fed.ok() ? FinalMetrics(central) : fed;
    if (!cen.ok()) {
      std::fprintf(stderr, "%s: %s\n", argv[i], std::string(cen.status().message()).c_str());
      return 1;
    }
    for (const auto& [name, value] : *fed) {
      char line[256];
      std::snprintf(line, sizeof(line), "%-22s %-9s %10.4f %10.4f", federated->name.c_str(),
                    name.c_str(), shoal::MetricAsDouble(value),
                    shoal::MetricAsDouble(cen->at(name)));
      lines.push_back(line);
    }
  }
  std::printf("%-22s %-9s %10s %10s\n", "config", "metric", "federated", "central");
  for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  return 0;
}
