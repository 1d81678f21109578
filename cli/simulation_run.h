// RunSimulation: an experiment config run with virtual clients in this
// process (`shoal sim`), by the same Coordinator and strategies as
// `shoal server`, writing the same outputs.
#ifndef SHOAL_CLI_SIMULATION_RUN_H_
#define SHOAL_CLI_SIMULATION_RUN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/experiment_config.h"
#include "common/parameters.h"
#include "server/coordinator.h"
#include "simulation/simulator.h"

namespace shoal::cli {

// SimulationResult: what a simulated run produced.
struct SimulationResult {
  std::vector<RoundRecord> history;  // [0] is the initial model
  std::vector<simulation::SimulatedRound> simulated;  // rounds 1..
  Parameters final_model;
  std::string stop_reason;   // why it ended early, if it did
  uint64_t clients = 0;      // registered
  int workers = 0;
  double simulated_seconds = 0;  // what the fleet would have taken
  double real_seconds = 0;
  size_t idle_bytes = 0;     // what the registered clients cost while idle
};

// RunSimulation loads the training data, builds the population and the
// data plan that `config` describes (printing a label summary and saving it
// with the run), and runs config.coordinator.num_rounds rounds. The output
// directory gets what `shoal server` writes (models/, metrics.json,
// metrics.csv) and clients.csv (each client's size, speed and labels).
// With `stop_on_signal`, SIGINT/SIGTERM end the run after the round in
// progress (the caller must have called InstallStopSignalHandlers first).
// InvalidArgument for a config the data cannot satisfy; other errors from
// the run.
absl::StatusOr<SimulationResult> RunSimulation(const ExperimentConfig& config,
                                               bool stop_on_signal = false);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SIMULATION_RUN_H_
