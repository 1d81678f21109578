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

// ProgressReporter prints one line per round and rewrites the metrics
// history (metrics.json and metrics.csv) after every round, so a run that is
// stopped keeps the rounds it finished.
class ProgressReporter : public RoundObserver {
 public:
  ProgressReporter(const ExperimentConfig& config, std::string output_dir)
      : config_(config), dir_(std::move(output_dir)), start_(absl::Now()) {}

  void OnRoundStart(uint32_t round, size_t sampled) override {
    spdlog::info("round {}/{}: asked {} client(s)", round, config_.coordinator.num_rounds,
                 sampled);
  }

  void OnRoundEnd(const RoundRecord& r) override {
    std::string eval = "test accuracy n/a";
    if (r.server_eval) {
      eval = absl::StrFormat("test loss %.4f, test accuracy %.2f%%", r.server_eval->loss,
                             100 * Accuracy(*r.server_eval));
    }
    rounds_.push_back(ToJson(r));
    if (absl::Status written = Write(); !written.ok()) {
      spdlog::warn("cannot write the metrics history: {}", std::string(written.message()));
    }
    if (r.round == 0) {
      spdlog::info("initial model | {}", eval);
      return;
    }
    if (r.federated_eval) {
      eval += absl::StrFormat(" | clients' accuracy %.2f%%", 100 * Accuracy(*r.federated_eval));
    }
    spdlog::info("round {}/{} | clients {}/{} | train loss {} | {}{} | {:.1f} s{}", r.round,
                 config_.coordinator.num_rounds, r.answered, r.sampled,
                 std::isnan(r.train_loss) ? std::string("n/a")
                                          : absl::StrFormat("%.4f", r.train_loss),
                 eval, MetricsText(r.strategy_metrics), r.seconds,
                 r.model_updated ? "" : " | model unchanged");
    for (const ClientFailure& f : r.failures) {
      spdlog::warn("round {}: client '{}' failed: {}", r.round, f.client_id,
                   std::string(f.status.message()));
    }
  }

  static double Accuracy(const EvaluateRes& res) {
    auto it = res.metrics.find("accuracy");
    return it == res.metrics.end() ? NAN : MetricAsDouble(it->second);
  }

  absl::Status Write() {
    json history{{"name", config_.name},
                 {"model", config_.model},
                 {"strategy", config_.strategy},
                 {"seed", config_.seed},
                 {"elapsed_seconds", absl::ToDoubleSeconds(absl::Now() - start_)},
                 {"rounds", rounds_}};
    SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir_ + "/metrics.json", history.dump(2) + "\n"));
    // Strategy metrics (e.g. the privacy spent) become extra columns: the
    // union of their names over the rounds, empty where a round has none.
    std::set<std::string> extra;
    for (const json& r : rounds_) {
      for (const auto& [k, v] : r["strategy_metrics"].items()) extra.insert(k);
    }
    std::ostringstream csv;
    csv << "round,sampled,answered,failed,model_version,train_loss,test_loss,test_accuracy,seconds";
    for (const std::string& k : extra) csv << ',' << k;
    csv << '\n';
    for (const json& r : rounds_) {
      csv << r["round"] << ',' << r["sampled"] << ',' << r["answered"] << ','
          << r["failed"] << ',' << r["model_version"] << ',' << r["train_loss"] << ','
          << r["test_loss"] << ',' << r["test_accuracy"] << ',' << r["seconds"];
      for (const std::string& k : extra) {
        csv << ',';
        if (r["strategy_metrics"].contains(k)) csv << r["strategy_metrics"][k];
      }
      csv << '\n';
    }
    return WriteFileAtomically(dir_ + "/metrics.csv", csv.str());
  }

 private:
  static json MetricsToJson(const Metrics& metrics) {
    json out = json::object();
    for (const auto& [k, v] : metrics) {
      std::visit([&, key = k](auto x) { out[key] = x; }, v);
    }
    return out;
  }

  // "name value" pairs for the progress line, e.g. " | dp_epsilon 1.23".
  static std::string MetricsText(const Metrics& metrics) {
    std::string out;
    for (const auto& [k, v] : metrics) {
      absl::StrAppend(&out, " | ", k, " ", absl::StrFormat("%.4g", MetricAsDouble(v)));
    }
    return out;
  }

  static json ToJson(const RoundRecord& r) {
    json failures = json::array();
    for (const ClientFailure& f : r.failures) {
      failures.push_back({{"client", f.client_id}, {"error", std::string(f.status.message())}});
    }
    auto num = [](double d) { return std::isfinite(d) ? json(d) : json(nullptr); };
    return json{{"round", r.round},
                {"sampled", r.sampled},
                {"answered", r.answered},
                {"failed", r.failures.size()},
                {"model_version", r.model_version},
                {"model_updated", r.model_updated},
                {"train_loss", num(r.train_loss)},
                {"train_examples", r.train_examples},
                {"test_loss", r.server_eval ? num(r.server_eval->loss) : json(nullptr)},
                {"test_accuracy", r.server_eval ? num(Accuracy(*r.server_eval)) : json(nullptr)},
                {"federated_loss", r.federated_eval ? num(r.federated_eval->loss) : json(nullptr)},
                {"federated_accuracy",
                 r.federated_eval ? num(Accuracy(*r.federated_eval)) : json(nullptr)},
                {"seconds", r.seconds},
                {"failures", failures},
                {"strategy_metrics", MetricsToJson(r.strategy_metrics)},
                {"note", r.note}};
  }

  const ExperimentConfig& config_;
  const std::string dir_;
  const absl::Time start_;
  json rounds_ = json::array();
};

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}

// BlockStopSignals must run before any thread starts, so every thread
// inherits the mask and only StopOnSignal's thread receives them.
void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// StopOnSignal asks the coordinator to stop after the current round on
// SIGINT/SIGTERM, from a thread that waits in sigwait (no handler races).
class StopOnSignal {
 public:
  explicit StopOnSignal(Coordinator* coordinator) {
    sigset_t set = StopSignals();
    thread_ = std::thread([set, coordinator] {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig != SIGUSR1) {
        spdlog::warn("signal {}: stopping after the current round", sig);
        coordinator->RequestStop();
      }
    });
  }
  ~StopOnSignal() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }

 private:
  std::thread thread_;
};

absl::StatusOr<ServerEvaluator> MakeTestSetEvaluator(const ExperimentConfig& config) {
  SHOAL_ASSIGN_OR_RETURN(client::Dataset test,
                         client::LoadFashionMnist(config.data_dir, client::Split::kTest));
  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, client::ParseModelSpec(config.model));
  spdlog::info("server-side evaluation on {} test examples from {}", test.size(), config.data_dir);
  return client::MakeDatasetEvaluator(spec, std::move(test));
}

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
  if (config.threads > 0) client::SetComputeThreads(static_cast<int>(config.threads));

  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, client::ParseModelSpec(config.model));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model, client::CreateModel(spec, config.seed));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Strategy> strategy, CreateExperimentStrategy(config));
  Parameters initial = model->GetParameters().Clone();
  if (std::optional<Parameters> custom = strategy->InitializeParameters()) initial = *custom;
  if (config.server_evaluation) {
    SHOAL_ASSIGN_OR_RETURN(ServerEvaluator evaluator, MakeTestSetEvaluator(config));
    strategy->set_server_evaluator(std::move(evaluator));
  }
  SHOAL_RETURN_IF_ERROR(MakeDirectories(config.output_dir));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ModelStore> store,
                         ModelStore::Open(config.output_dir + "/models", config.model));

  ClientManager clients;
  FederationService service({absl::Seconds(10), config.name}, &clients, store.get());
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> server,
                         GrpcServer::Start(config.address, &service));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator,
                         Coordinator::Create(config.coordinator, &clients, strategy.get(),
                                             store.get(), std::move(initial)));
  spdlog::info("run '{}': {} rounds of {} on model '{}' ({} parameters), listening on port {}",
               config.name, config.coordinator.num_rounds, config.strategy, config.model,
               model->GetParameters().NumElements(), server->port());
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
                100 * ProgressReporter::Accuracy(*last->server_eval), last->server_eval->loss);
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
