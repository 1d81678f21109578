#include <pthread.h>
#include <signal.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <variant>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/experiment_config.h"
#include "cli/progress_reporter.h"
#include "cli/stop_signal.h"
#include "cli/transport.h"
#include "client/data/dataset.h"
#include "client/dataset_evaluator.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status.h"
#include "server/client_manager.h"
#include "server/coordinator.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "strategies/registry.h"

namespace shoal::cli {
namespace {

using nlohmann::json;

absl::Status RunServer(const ServerFlags& flags, int* exit_code) {
  *exit_code = 2;  // bad input until the run starts
  BlockStopSignals();
  ExperimentConfig config;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(config, LoadExperimentConfig(flags.config));
  }
  if (!flags.address.empty()) config.address = flags.address;
  if (!flags.output_dir.empty()) config.output_dir = flags.output_dir;
  if (flags.rounds > 0) config.coordinator.num_rounds = flags.rounds;
  SHOAL_RETURN_IF_ERROR(InitLogging("server", flags.log_level));
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const TlsMaterial> tls,
                         LoadTransport(Side::kServer, flags.pki_dir, flags.insecure_plaintext));
  if (config.threads > 0) client::SetComputeThreads(static_cast<int>(config.threads));

  SHOAL_ASSIGN_OR_RETURN(ServerSide server_side, PrepareServerSide(config));
  const int64_t num_parameters = server_side.initial.NumElements();
  SHOAL_RETURN_IF_ERROR(MakeDirectories(config.output_dir));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ModelStore> store,
                         ModelStore::Open(config.output_dir + "/models", config.model));

  ClientManager clients;
  FederationServiceOptions service_options;
  service_options.run_id = config.name;
  service_options.access.require_certificate = tls != nullptr;
  if (tls != nullptr) service_options.access.revoked_file = flags.pki_dir + "/revoked.txt";
  FederationService service(service_options, &clients, store.get());
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> server,
                         GrpcServer::Start(config.address, &service, tls.get()));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator,
                         Coordinator::Create(config.coordinator, &clients,
                                             server_side.strategy.get(), store.get(),
                                             std::move(server_side.initial)));
  spdlog::info("run '{}': {} rounds of {} on model '{}' ({} parameters), listening on port {} "
               "({})",
               config.name, config.coordinator.num_rounds, config.strategy, config.model,
               num_parameters, server->port(),
               tls != nullptr ? "mutual TLS, clients admitted by certificate" : "PLAINTEXT");
  ProgressReporter progress(config, config.output_dir);
  coordinator->AddObserver(&progress);

  *exit_code = 1;
  absl::StatusOr<std::vector<RoundRecord>> history;
  {
    StopOnSignal stop(coordinator.get());
    history = coordinator->Run();
  }
  // Give clients a moment to fetch the final model and leave: live clients
  // are long-polling and hear of the end at once. Stop waiting when all have
  // left, when those remaining have been silent for 3 s (dead devices), or
  // after 15 s.
  const absl::Time linger_start = absl::Now();
  while (clients.NumRegistered() > 0 && absl::Now() < linger_start + absl::Seconds(15)) {
    const absl::Time now = absl::Now();
    if (now - linger_start > absl::Seconds(3) &&
        clients.NumSeenSince(now - absl::Seconds(3)) == 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  server->Shutdown();
  SHOAL_RETURN_IF_ERROR(history.status());
  SHOAL_RETURN_IF_ERROR(progress.Write());

  std::optional<ModelRecord> latest = store->Latest();
  const RoundRecord* last = history->empty() ? nullptr : &history->back();
  // history[0] is the initial model's evaluation, not a training round.
  std::printf("\n=== Shoal run '%s' finished: %zu round(s) ===\n", config.name.c_str(),
              history->empty() ? size_t{0} : history->size() - 1);
  if (!coordinator->stop_reason().empty()) {
    std::printf("Stopped early: %s\n", coordinator->stop_reason().c_str());
  }
  if (last != nullptr && last->server_eval) {
    std::printf("Final test accuracy: %.2f%% (test loss %.4f)\n",
                100 * Accuracy(*last->server_eval), last->server_eval->loss);
  }
  if (latest) {
    std::printf("Final model: version %lld in %s/%s (sha256 %s)\n",
                static_cast<long long>(latest->version), store->dir().c_str(),
                latest->params_file.c_str(), latest->sha256_hex.c_str());
  }
  std::printf("Metrics history: %s/metrics.json and metrics.csv\n", config.output_dir.c_str());
  std::printf("Run inference (works offline):\n  shoal infer --model-dir %s --input %s/t10k-images-idx3-ubyte.gz --labels %s/t10k-labels-idx1-ubyte.gz\n",
              store->dir().c_str(), config.data_dir.c_str(), config.data_dir.c_str());
  std::fflush(stdout);
  *exit_code = 0;
  return absl::OkStatus();
}

}  // namespace

int RunServerCommand(const ServerFlags& flags) {
  int exit_code = 1;
  absl::Status status = RunServer(flags, &exit_code);
  if (!status.ok()) {
    std::fprintf(stderr, "shoal server: %s\n", std::string(status.message()).c_str());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
