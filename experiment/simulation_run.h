// Simulation, RunSimulation: an experiment config run with virtual clients in this
// process (`shoal sim`), by the same Coordinator and strategies as
// `shoal server`, writing the same outputs.
#ifndef SHOAL_CLI_SIMULATION_RUN_H_
#define SHOAL_CLI_SIMULATION_RUN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/parameters.h"
#include "experiment/experiment_config.h"
#include "server/coordinator.h"
#include "simulation/simulator.h"

namespace shoal {

// SimulationResult: what a simulated run produced.
struct SimulationResult {
  // [0] is the initial model. RoundRecord::seconds is simulated: the
  // Coordinator runs on the simulated clock.
  std::vector<RoundRecord> history;
  std::vector<simulation::SimulatedRound> simulated;  // rounds 1..
  std::vector<double> round_real_seconds;             // rounds 1..: real time each took
  Parameters final_model;
  std::string stop_reason;  // why it ended early, if it did
  uint64_t clients = 0;     // registered
  int workers = 0;
  double simulated_seconds = 0;  // what the fleet would have taken
  double real_seconds = 0;       // what the run took
  size_t idle_bytes = 0;  // what the registered clients cost while idle
};

// Simulation: one simulated run of an experiment config, created, run
// once and optionally stopped from another thread. Owns everything it
// builds (population, data plan, model store, strategy, Coordinator).
// Thread safety: Stop() from any thread; the rest from the owner's.
class Simulation {
 public:
  // Create loads the training data, builds the population and the data
  // plan that `config` describes (printing a label summary and saving it
  // with the run) and the strategy and model. Errors: InvalidArgument for a
  // config the data cannot satisfy; NotFound / InvalidArgument for data that
  // cannot be read; Internal when output_dir cannot be written.
  static absl::StatusOr<std::unique_ptr<Simulation>> Create(ExperimentConfig config);
  ~Simulation();

  // Run runs config.coordinator.num_rounds rounds. The output directory
  // gets what `shoal server` writes (models/, metrics.json, metrics.csv)
  // and clients.csv (each client's size, speed and labels). Call once.
  // Errors: those of the round engine and of writing the outputs.
  absl::StatusOr<SimulationResult> Run();

  // Stop ends the run after the round in progress. Any thread, any time.
  void Stop();

  // AddObserver tells `observer` (not owned; outlives Run) about every
  // round too, e.g. the telemetry's RunMetrics and Dashboard. Before Run.
  void AddObserver(RoundObserver* observer);

 private:
  struct State;
  explicit Simulation(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// RunSimulation is Simulation::Create(config) and Run(), for callers that do
// not stop it.
absl::StatusOr<SimulationResult> RunSimulation(const ExperimentConfig& config);

}  // namespace shoal

#endif  // SHOAL_CLI_SIMULATION_RUN_H_
