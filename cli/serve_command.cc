// `shoal serve`: a long-running federation (docs/lifecycle.md). One port for
// the devices and the admin service; runs submitted to it train one after
// another over the same enrolled devices; serving versions are promoted,
// rolled out and rolled back without a restart. It keeps everything under
// --state-dir, so a restart resumes the run that was training.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "cli/telemetry.h"
#include "cli/transport.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/signing.h"
#include "common/status.h"
#include "experiment/experiment_config.h"
#include "experiment/dashboard.h"
#include "experiment/progress_reporter.h"
#include "experiment/run_metrics.h"
#include "server/admin_service.h"
#include "server/federation_server.h"
#include "server/rollout.h"
#include "server/run_queue.h"
#include "server/serving_catalog.h"

namespace shoal::cli {
namespace {

struct RunPreparerContext {
  std::shared_ptr<const ModelSigner> signer;
  Rollout* rollout = nullptr;
  const ServingCatalog* catalog = nullptr;
  // The federation's telemetry (server.metrics), fed by every run; null
  // without it.
  RunMetrics* metrics = nullptr;
  Dashboard* dashboard = nullptr;
};

// RunTelemetry hands one run's rounds to the federation's metrics and
// dashboard, which outlive it; the dashboard starts over when the run's
// first round (or its restored history) arrives.
class RunTelemetry : public RoundObserver {
 public:
  RunTelemetry(const RunPreparerContext& context, std::string id, std::string strategy,
               uint32_t rounds)
      : metrics_(context.metrics),
        dashboard_(context.dashboard),
        id_(std::move(id)),
        strategy_(std::move(strategy)),
        rounds_(rounds) {}

  void OnRoundStart(uint32_t round, size_t sampled) override {
    Begin();
    metrics_->OnRoundStart(round, sampled);
    dashboard_->OnRoundStart(round, sampled);
  }
  void OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                     size_t asked) override {
    metrics_->OnSecureStage(round, stage, answered, asked);
  }
  void OnRoundEnd(const RoundRecord& record) override {
    Begin();
    metrics_->OnRoundEnd(record);
    dashboard_->OnRoundEnd(record);
  }
  void OnRestored(const std::vector<RoundRecord>& history) override {
    Begin();
    metrics_->OnRestored(history);
    dashboard_->OnRestored(history);
  }

 private:
  void Begin() {
    if (begun_) return;
    begun_ = true;
    dashboard_->BeginRun(id_, strategy_, rounds_);
  }

  RunMetrics* const metrics_;
  Dashboard* const dashboard_;
  const std::string id_, strategy_;
  const uint32_t rounds_;
  bool begun_ = false;  // the Coordinator's thread only
};

// RunsJson is the dashboard's list of runs, newest last.
nlohmann::json RunsJson(const RunQueue& runs) {
  nlohmann::json out = nlohmann::json::array();
  for (const RunInfo& run : runs.List()) {
    auto accuracy = run.metrics.find("accuracy");
    out.push_back({{"id", run.id},
                   {"name", run.name},
                   {"state", RunStateName(run.state)},
                   {"strategy", run.strategy},
                   {"rounds_done", run.rounds_done},
                   {"rounds_planned", run.rounds_planned},
                   {"accuracy", accuracy == run.metrics.end()
                                    ? nlohmann::json(nullptr)
                                    : nlohmann::json(MetricAsDouble(accuracy->second))},
                   {"message", run.message}});
  }
  return out;
}

// PrepareRun turns a submitted config into a run (RunPreparer). The keys
// about where and how the server runs ("server": address, output_dir,
// threads, serving.dir) are the federation's, not the run's: they are
// ignored, except serving.dir, which is refused, since a run cannot bring
// a catalog of its own.
absl::StatusOr<PreparedRun> PrepareRun(const RunPreparerContext& context,
                                       const std::string& text, const std::string& source,
                                       const std::string& id, const std::string& dir) {
  SHOAL_ASSIGN_OR_RETURN(ExperimentConfig parsed, ParseExperimentConfig(text, source));
  // The progress reporter refers to the config: it lives as long as the run.
  auto shared = std::make_shared<const ExperimentConfig>(std::move(parsed));
  const ExperimentConfig& config = *shared;
  if (!config.serving.dir.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": 'server.serving.dir' cannot be set in a run submitted to `shoal serve`: the "
                "federation keeps the serving versions (--state-dir/serving); leave it out"));
  }
  SHOAL_ASSIGN_OR_RETURN(ServerSide side, PrepareServerSide(config));
  PreparedRun run;
  run.strategy = std::move(side.strategy);
  run.initial = std::move(side.initial);
  run.options.name = id;
  run.options.model_spec = client::ModelSpecToString(side.model);
  run.options.coordinator = config.coordinator;
  run.options.delta_downloads = config.delta_downloads;
  run.options.signer = context.signer;
  SHOAL_ASSIGN_OR_RETURN(run.options.fingerprint_config, FingerprintedConfigText(text, source));
  if (dir.empty()) return run;  // checked only; not to be trained
  run.context = shared;
  auto progress = std::make_unique<ProgressReporter>(config, dir);
  ProgressReporter* reporter = progress.get();
  run.finish = [reporter] { return reporter->Write(); };
  run.observers.push_back(std::move(progress));
  if (context.metrics != nullptr) {
    run.observers.push_back(std::make_unique<RunTelemetry>(context, id, config.strategy,
                                                           config.coordinator.num_rounds));
  }
  if (config.serving.auto_promote) {
    run.observers.push_back(std::make_unique<AutoPromoter>(
        context.rollout, context.catalog, id, dir + "/models", config.coordinator.num_rounds,
        config.serving.margin, config.coordinator.target_accuracy));
  }
  return run;
}

absl::Status Serve(const ServeFlags& flags, int* exit_code) {
  *exit_code = 2;
  SHOAL_RETURN_IF_ERROR(InstallStopSignalHandlers());
  SHOAL_RETURN_IF_ERROR(InitLogging("serve", flags.log_level));
  // The federation's own settings: the rollout (server.serving) and the
  // address, from an optional config file; flags override.
  ExperimentConfig config;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(config, LoadExperimentConfig(flags.config));
  }
  const std::string address = !flags.address.empty() ? flags.address : config.address;
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateListenAddress(address), "--address"));
  if (flags.pki_dir.empty()) {
    return absl::InvalidArgumentError(
        "shoal serve needs --pki-dir (the server's folder from `shoal certs init`): its admin "
        "service admits admin certificates only, and its serving versions are signed");
  }
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const TlsMaterial> tls,
                         LoadTransport(Side::kServer, flags.pki_dir, false));
  SHOAL_ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelSigner> signer,
      Annotate(ModelSigner::Load(flags.pki_dir + "/model-signing.key"), "--pki-dir"));
  SHOAL_ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelVerifier> verifier,
      Annotate(ModelVerifier::Load(flags.pki_dir + "/model-signing.pub"), "--pki-dir"));
  SHOAL_RETURN_IF_ERROR(Annotate(MakeDirectories(flags.state_dir), "--state-dir"));
  const std::string serving_dir =
      config.serving.dir.empty() ? flags.state_dir + "/serving" : config.serving.dir;
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<ServingCatalog> catalog,
      Annotate(ServingCatalog::Open({serving_dir, signer, verifier, 20}), "serving catalog"));
  RolloutOptions rollout_options;
  rollout_options.canary_fraction = config.serving.canary_fraction;
  rollout_options.min_canary_reports = config.serving.min_canary_reports;
  rollout_options.max_canary_refusals = config.serving.max_canary_refusals;
  rollout_options.margin = config.serving.canary_margin;
  rollout_options.canary_deadline = absl::Seconds(config.serving.canary_deadline_s);
  rollout_options.state_file = serving_dir + "/rollout.json";
  Rollout rollout(rollout_options, catalog.get());

  // Telemetry (server.metrics): the federation's series and dashboard, fed
  // by each run in turn (RunTelemetry) and by the gRPC calls.
  std::unique_ptr<RunMetrics> metrics;
  std::unique_ptr<Dashboard> dashboard;
  FederationHost* live_host = nullptr;  // set once started
  RunQueue* queue = nullptr;            // set once opened
  if (!config.metrics.listen.empty()) {
    metrics = std::make_unique<RunMetrics>();
    DashboardOptions board;
    board.run_name = "waiting for a run";
    board.devices = [&live_host] {
      return live_host != nullptr ? live_host->clients()->Statuses()
                                  : std::vector<ClientStatus>{};
    };
    board.fleet = [&live_host] {
      return live_host != nullptr ? live_host->fleet() : std::map<std::string, FleetServing>{};
    };
    board.runs = [&queue] {
      return queue != nullptr ? RunsJson(*queue) : nlohmann::json::array();
    };
    dashboard = std::make_unique<Dashboard>(std::move(board));
    dashboard->SetState("idle");
  }
  RunPreparerContext context{signer, &rollout, catalog.get(), metrics.get(), dashboard.get()};
  RunQueueOptions queue_options;
  queue_options.dir = flags.state_dir;
  queue_options.prepare = [context](const std::string& text, const std::string& source,
                                    const std::string& id, const std::string& dir) {
    return PrepareRun(context, text, source, id, dir);
  };
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<RunQueue> runs,
                         Annotate(RunQueue::Open(std::move(queue_options)), "--state-dir"));
  queue = runs.get();
  std::unique_ptr<FederationHost> host;
  AdminServiceOptions admin_options;
  admin_options.revoked_file = flags.pki_dir + "/revoked.txt";
  admin_options.fleet = [&host] {
    return host != nullptr ? host->fleet() : std::map<std::string, FleetServing>();
  };
  AdminService admin(admin_options, runs.get(), catalog.get(), &rollout);
  FederationHostOptions host_options;
  host_options.address = address;
  host_options.tls = tls;
  host_options.revoked_file = flags.pki_dir + "/revoked.txt";
  host_options.serving = catalog.get();
  host_options.rollout = &rollout;
  host_options.services = {&admin};
  host_options.rpc_observer = metrics.get();
  SHOAL_ASSIGN_OR_RETURN(host, FederationHost::Start(std::move(host_options)));
  live_host = host.get();
  std::unique_ptr<telemetry::Endpoint> endpoint;  // stops before the host and the queue go
  if (metrics != nullptr) {
    FederationHost* counted = host.get();
    SHOAL_ASSIGN_OR_RETURN(
        endpoint, ServeRunTelemetry(ServerMetricsListen(config.metrics, flags.pki_dir), *metrics,
                                    *dashboard, [counted] {
                                      return static_cast<double>(
                                          counted->clients()->LiveClientIds().size());
                                    }, catalog.get()));
  }

  *exit_code = 1;
  size_t queued = 0, interrupted = 0;
  for (const RunInfo& run : runs->List()) {
    queued += run.state == RunState::kQueued ? 1 : 0;
    interrupted += run.state == RunState::kRunning ? 1 : 0;
  }
  const std::optional<ModelRecord> serving = catalog->Current();
  Say(
      "shoal serve: listening on %s (port %d, mutual TLS); state in %s; %zu run(s) queued%s; %s\n"
      "submit a run: shoal run submit CONFIG --server %s --pki-dir PKI/admins/NAME\n",
      address.c_str(), host->port(), flags.state_dir.c_str(), queued,
      interrupted > 0 ? ", 1 interrupted run resumes first" : "",
      serving ? absl::StrCat("serving version ", serving->version).c_str()
              : "no serving version yet",
      address.c_str());
  std::fflush(stdout);
  runs->Start(host.get());
  int signal = 0;
  {
    absl::Notification stop;
    StopOnSignal on_signal([&stop] { stop.Notify(); });
    stop.WaitForNotification();
    signal = on_signal.received();
  }
  spdlog::info("stopping on signal {}: the run in progress stops after its round and resumes "
               "at the next start",
               signal);
  endpoint.reset();
  runs->Shutdown();
  host->Shutdown();
  *exit_code = 0;
  return absl::OkStatus();
}

}  // namespace

int RunServeCommand(const ServeFlags& flags) {
  int exit_code = 1;
  absl::Status status = Serve(flags, &exit_code);
  if (!status.ok()) {
    PrintCommandError("serve", status.message());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
