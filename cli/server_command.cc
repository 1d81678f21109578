#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "cli/telemetry.h"
#include "cli/transport.h"
#include "client/data/dataset.h"
#include "client/dataset_evaluator.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/files.h"
#include "common/json.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/signing.h"
#include "common/status.h"
#include "experiment/experiment_config.h"
#include "experiment/progress_reporter.h"
#include "experiment/dashboard.h"
#include "experiment/run_metrics.h"
#include "server/federation_server.h"
#include "server/rollout.h"
#include "server/serving_catalog.h"
#include "telemetry/endpoint.h"
#include "telemetry/process_metrics.h"
#include "strategies/registry.h"

namespace shoal::cli {
namespace {

using nlohmann::json;

absl::Status RunServer(const ServerFlags& flags, int* exit_code) {
  *exit_code = 2;  // bad input until the run starts
  SHOAL_RETURN_IF_ERROR(InstallStopSignalHandlers());
  ExperimentConfig config;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(config, LoadExperimentConfig(flags.config));
  }
  if (!flags.address.empty()) {
    SHOAL_RETURN_IF_ERROR(Annotate(ValidateListenAddress(flags.address), "--address"));
    config.address = flags.address;
  }
  if (!flags.output_dir.empty()) config.output_dir = flags.output_dir;
  if (flags.rounds > 0) config.coordinator.num_rounds = flags.rounds;
  SHOAL_RETURN_IF_ERROR(InitLogging("server", flags.log_level));
  if (config.threads > 0) client::SetComputeThreads(static_cast<int>(config.threads));

  SHOAL_ASSIGN_OR_RETURN(ServerSide server_side, PrepareServerSide(config));
  // After the config is fully checked, so a bad key is named first.
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const TlsMaterial> tls,
                         LoadTransport(Side::kServer, flags.pki_dir, flags.insecure_plaintext));
  FederationServerOptions options;
  options.name = config.name;
  options.address = config.address;
  options.output_dir = config.output_dir;
  options.model_spec = client::ModelSpecToString(server_side.model);
  options.coordinator = config.coordinator;
  options.delta_downloads = config.delta_downloads;
  options.tls = tls;
  options.fresh = flags.fresh;
  SHOAL_ASSIGN_OR_RETURN(options.fingerprint_config, FingerprintedConfig(flags.config));
  // Secure runs sign every model version; devices refuse unsigned ones.
  if (tls != nullptr) {
    options.revoked_file = flags.pki_dir + "/revoked.txt";
    SHOAL_ASSIGN_OR_RETURN(
        options.signer,
        Annotate(ModelSigner::Load(flags.pki_dir + "/model-signing.key"), "--pki-dir"));
  }
  const bool signed_models = options.signer != nullptr;
  ProgressReporter progress(config, config.output_dir);
  options.observers.push_back(&progress);
  // Serving versions (docs/lifecycle.md): offered to devices on every poll,
  // rolled out to a canary first, and this run's final model promoted when
  // it beats the serving one.
  std::unique_ptr<ServingCatalog> catalog;
  std::unique_ptr<Rollout> rollout;
  std::unique_ptr<AutoPromoter> promoter;
  if (config.serving.dir.empty() && config.serving.auto_promote) {
    return absl::InvalidArgumentError(
        "'server.serving.auto_promote' needs 'server.serving.dir', the serving catalog's folder");
  }
  if (!config.serving.dir.empty()) {
    if (!signed_models) {
      return absl::InvalidArgumentError(
          "'server.serving' needs --pki-dir: serving versions are always signed");
    }
    SHOAL_ASSIGN_OR_RETURN(
        std::shared_ptr<const ModelVerifier> verifier,
        Annotate(ModelVerifier::Load(flags.pki_dir + "/model-signing.pub"), "--pki-dir"));
    SHOAL_ASSIGN_OR_RETURN(catalog, Annotate(ServingCatalog::Open({config.serving.dir,
                                                                   options.signer, verifier, 20}),
                                             "'server.serving.dir'"));
    RolloutOptions rollout_options;
    rollout_options.canary_fraction = config.serving.canary_fraction;
    rollout_options.min_canary_reports = config.serving.min_canary_reports;
    rollout_options.max_canary_refusals = config.serving.max_canary_refusals;
    rollout_options.margin = config.serving.canary_margin;
    rollout_options.canary_deadline = absl::Seconds(config.serving.canary_deadline_s);
    rollout_options.state_file = config.serving.dir + "/rollout.json";
    rollout = std::make_unique<Rollout>(rollout_options, catalog.get());
    options.serving = catalog.get();
    options.rollout = rollout.get();
    if (config.serving.auto_promote) {
      promoter = std::make_unique<AutoPromoter>(rollout.get(), catalog.get(), config.name,
                                                config.output_dir + "/models",
                                                config.coordinator.num_rounds,
                                                config.serving.margin,
                                                config.coordinator.target_accuracy);
      options.observers.push_back(promoter.get());
    }
  }
  // Telemetry (server.metrics): the run's series, fed by the rounds and the
  // gRPC calls, served with the process's own on /metrics.
  std::unique_ptr<RunMetrics> metrics;
  std::unique_ptr<Dashboard> dashboard;
  FederationServer* running = nullptr;  // set once created; read by the dashboard
  if (!config.metrics.listen.empty()) {
    metrics = std::make_unique<RunMetrics>();
    options.observers.push_back(metrics.get());
    options.rpc_observer = metrics.get();
    DashboardOptions board;
    board.run_name = config.name;
    board.strategy = config.strategy;
    board.rounds = config.coordinator.num_rounds;
    board.devices = [&running] {
      return running != nullptr ? running->clients() : std::vector<ClientStatus>{};
    };
    board.fleet = [&running] {
      return running != nullptr ? running->fleet() : std::map<std::string, FleetServing>{};
    };
    dashboard = std::make_unique<Dashboard>(std::move(board));
    options.observers.push_back(dashboard.get());
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<FederationServer> server,
                         FederationServer::Create(std::move(options), server_side.strategy.get(),
                                                  std::move(server_side.initial)));
  running = server.get();
  std::unique_ptr<telemetry::Endpoint> endpoint;
  if (metrics != nullptr) {
    FederationServer* live = server.get();
    SHOAL_ASSIGN_OR_RETURN(
        endpoint, ServeRunTelemetry(ServerMetricsListen(config.metrics, flags.pki_dir), *metrics,
                                    *dashboard, [live] {
                                      return static_cast<double>(live->live_clients());
                                    }, catalog.get()));
  }
  if (const PreviousRun* previous = server->previous_run();
      previous != nullptr && previous->finished) {
    const uint32_t planned = config.coordinator.num_rounds;
    const std::string what =
        previous->stop_reason.empty()
            ? absl::StrCat("all ", planned, " rounds are done")
            : absl::StrCat("it ended after round ", previous->round, ": ", previous->stop_reason);
    Say(
        "Run '%s' already finished: %s (checkpoint of %s in %s). Nothing to train; "
        "pass --fresh to start over%s.\n",
        config.name.c_str(), what.c_str(), previous->created_at.c_str(),
        previous->checkpoint_dir.c_str(),
        previous->stop_reason.empty() ? ", or --rounds N to run more" : "");
    std::fflush(stdout);
    *exit_code = 0;
    return absl::OkStatus();
  }

  *exit_code = 1;
  absl::StatusOr<FederationRun> run;
  int stop_signal = 0;
  {
    StopOnSignal stop([&server] { server->Stop(); });
    run = server->Run();
    stop_signal = stop.received();
  }
  if (dashboard != nullptr) {
    dashboard->SetState(!run.ok()                     ? "failed"
                        : !run->stop_reason.empty()   ? "stopped early"
                        : stop_signal != 0            ? "stopped by a signal"
                                                      : "finished");
  }
  if (endpoint != nullptr && stop_signal == 0 && config.metrics.linger_s > 0) {
    // Scrapers read the last round's figures before the endpoint goes; a
    // signal cuts the wait short.
    spdlog::info("metrics and dashboard stay up {:g} s more", config.metrics.linger_s);
    absl::Notification done;
    StopOnSignal stop([&done] {
      if (!done.HasBeenNotified()) done.Notify();
    });
    done.WaitForNotificationWithTimeout(absl::Seconds(config.metrics.linger_s));
  }
  SHOAL_RETURN_IF_ERROR(run.status());
  SHOAL_RETURN_IF_ERROR(progress.Write());
  const std::vector<RoundRecord>* history = &run->history;

  const std::optional<ModelRecord>& latest = run->final_model;
  const RoundRecord* last = history->empty() ? nullptr : &history->back();
  // history[0] is the initial model's evaluation, not a training round.
  Say("\n=== Shoal run '%s' finished: %zu round(s) ===\n", config.name.c_str(),
              history->empty() ? size_t{0} : history->size() - 1);
  if (!run->stop_reason.empty()) {
    Say("Stopped early: %s\n", run->stop_reason.c_str());
  } else if (stop_signal != 0) {
    Say(
        "Stopped by signal %d after round %u; start the server again to "
        "resume\n",
        stop_signal, last != nullptr ? last->round : 0);
  }
  if (last != nullptr && last->server_eval) {
    Say("Final test accuracy: %.2f%% (test loss %.4f)\n",
                100 * Accuracy(*last->server_eval), last->server_eval->loss);
  }
  if (latest) {
    Say("Final model: version %lld in %s/%s (sha256 %s)\n",
                static_cast<long long>(latest->version), server->model_dir().c_str(),
                latest->params_file.c_str(), latest->sha256_hex.c_str());
  }
  Say("Metrics history: %s/metrics.json and metrics.csv\n", config.output_dir.c_str());
  const std::string verify = signed_models
                                 ? absl::StrCat("--model-key ", flags.pki_dir, "/model-signing.pub")
                                 : std::string("--insecure-unverified");
  // With the config, infer reads the test split as the evaluation did
  // (same format and normalization).
  const std::string data =
      flags.config.empty()
          ? absl::StrCat("--input ", config.data.dir, "/t10k-images-idx3-ubyte.gz --labels ",
                         config.data.dir, "/t10k-labels-idx1-ubyte.gz")
          : absl::StrCat("--config ", flags.config, " --input ", config.data.dir);
  Say("Run inference (works offline):\n  shoal infer %s --model-dir %s %s\n",
              verify.c_str(), server->model_dir().c_str(), data.c_str());
  std::fflush(stdout);
  *exit_code = 0;
  return absl::OkStatus();
}

}  // namespace

int RunServerCommand(const ServerFlags& flags) {
  int exit_code = 1;
  absl::Status status = RunServer(flags, &exit_code);
  if (!status.ok()) {
    PrintCommandError("server", status.message());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
