// `shoal sim`: RunSimulation with flags, and a summary for people.
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "cli/telemetry.h"
#include "common/logging.h"
#include "common/status.h"
#include "experiment/experiment_config.h"
#include "experiment/dashboard.h"
#include "experiment/progress_reporter.h"
#include "experiment/run_metrics.h"
#include "telemetry/process_metrics.h"
#include "experiment/simulation_run.h"

namespace shoal::cli {
namespace {

absl::Status RunSim(const SimFlags& flags, int* exit_code) {
  *exit_code = 2;  // bad input until the run starts
  SHOAL_RETURN_IF_ERROR(InstallStopSignalHandlers());
  ExperimentConfig config;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(config, LoadExperimentConfig(flags.config));
  }
  if (!flags.output_dir.empty()) config.output_dir = flags.output_dir;
  if (flags.rounds > 0) config.coordinator.num_rounds = flags.rounds;
  if (flags.clients > 0) config.simulation.clients = static_cast<uint64_t>(flags.clients);
  if (flags.workers >= 0) config.simulation.options.workers = flags.workers;
  SHOAL_RETURN_IF_ERROR(InitLogging("sim", flags.log_level));

  *exit_code = 1;
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Simulation> simulation, Simulation::Create(config));
  // Telemetry (server.metrics): the same series and dashboard as a real
  // server's, with the simulated clock's round times.
  std::unique_ptr<RunMetrics> metrics;
  std::unique_ptr<Dashboard> dashboard;
  std::unique_ptr<telemetry::Endpoint> endpoint;
  if (!config.metrics.listen.empty()) {
    metrics = std::make_unique<RunMetrics>();
    DashboardOptions board;
    board.run_name = config.name;
    board.strategy = config.strategy;
    board.rounds = config.coordinator.num_rounds;
    dashboard = std::make_unique<Dashboard>(std::move(board));
    simulation->AddObserver(metrics.get());
    simulation->AddObserver(dashboard.get());
    SHOAL_ASSIGN_OR_RETURN(
        endpoint, ServeRunTelemetry(ServerMetricsListen(config.metrics, /*pki_dir=*/""),
                                    *metrics, *dashboard));
  }
  absl::StatusOr<SimulationResult> run;
  {
    StopOnSignal stop([&simulation] { simulation->Stop(); });
    run = simulation->Run();
  }
  SHOAL_RETURN_IF_ERROR(run.status());
  const SimulationResult& result = *run;
  const RoundRecord* last = result.history.empty() ? nullptr : &result.history.back();
  Say(
      "\n=== Shoal simulation '%s' finished: %zu round(s), %llu registered clients, "
      "%d worker(s) ===\n",
      config.name.c_str(), result.history.empty() ? size_t{0} : result.history.size() - 1,
      static_cast<unsigned long long>(result.clients), result.workers);
  if (!result.stop_reason.empty()) Say("Stopped early: %s\n", result.stop_reason.c_str());
  if (last != nullptr && last->server_eval) {
    Say("Final test accuracy: %.2f%% (test loss %.4f)\n",
                100 * Accuracy(*last->server_eval), last->server_eval->loss);
  }
  Say("Simulated fleet time: %.1f s (%.2f h); real time: %.1f s\n",
              result.simulated_seconds, result.simulated_seconds / 3600, result.real_seconds);
  Say(
      "Final model: %s/models; metrics: %s/metrics.json and metrics.csv; clients: "
      "%s/clients.csv\n",
      config.output_dir.c_str(), config.output_dir.c_str(), config.output_dir.c_str());
  std::fflush(stdout);
  *exit_code = 0;
  return absl::OkStatus();
}

}  // namespace

int RunSimCommand(const SimFlags& flags) {
  int exit_code = 1;
  absl::Status status = RunSim(flags, &exit_code);
  if (!status.ok()) {
    PrintCommandError("sim", status.message());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
