#include "bench/robustness.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/data/partition.h"
#include "client/data/source.h"
#include "client/dataset_evaluator.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/random.h"
#include "common/status.h"
#include "server/client_manager.h"
#include "secagg/participant.h"
#include "server/client_proxy.h"
#include "server/coordinator.h"
#include "server/model_store.h"
#include "strategies/registry.h"

namespace shoal::bench {
namespace {

// LocalClientProxy reaches a LocalClient in the same process: Fit trains at
// once on the calling thread (the Coordinator's), poisons the update as
// `attack` says, and hands it to the round. Clients therefore train one
// after another, which keeps a trial deterministic and one LibTorch thread
// busy. Does not own the LocalClient.
class LocalClientProxy : public ClientProxy {
 public:
  LocalClientProxy(std::string id, client::LocalClient* local,
                   AttackOptions attack)
      : id_(std::move(id)), local_(local), attack_(attack) {}

  const std::string& id() const override { return id_; }

  void Fit(const FitIns& ins, absl::Time deadline,
           FitResultHandler handler) override {
    absl::StatusOr<FitRes> res =
        local_->Fit(*ins.parameters, ins.config, ins.round);
    if (res.ok()) {
      absl::Status poisoned = ApplyAttack(attack_, ins.round, &*res);
      if (!poisoned.ok()) res = poisoned;
    }
    if (res.ok() && ins.secagg != nullptr) res = secagg_.MaskedResult(*ins.secagg, *res);
    handler(std::move(res)).IgnoreError();  // a refusal is in the RoundRecord
  }
  void SecAgg(const v1::SecAggServerMessage& message, uint32_t round, absl::Time deadline,
              SecAggResultHandler handler) override {
    handler(secagg_.Handle(message)).IgnoreError();
  }
  void Evaluate(const EvaluateIns& ins, absl::Time deadline,
                EvaluateResultHandler handler) override {
    handler(local_->Evaluate(*ins.parameters, ins.config)).IgnoreError();
  }
  void Cancel() override {}
  void Shutdown(const std::string& reason, int64_t final_version) override {}

 private:
  const std::string id_;
  client::LocalClient* const local_;
  const AttackOptions attack_;
  secagg::SecAggParticipant secagg_;
};

// ScratchDir is a fresh directory under $TMPDIR (or /tmp), removed with
// everything in it when destroyed: a trial's model store.
class ScratchDir {
 public:
  static absl::StatusOr<ScratchDir> Create() {
    const char* tmp = getenv("TMPDIR");
    std::string tmpl = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp",
                                    "/shoal-robustness-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(
          absl::StrCat("cannot create a directory like ", tmpl));
    }
    return ScratchDir(tmpl);
  }
  ScratchDir(ScratchDir&& other) noexcept
      : path_(std::exchange(other.path_, "")) {}
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

double Accuracy(const EvaluateRes& res) {
  auto it = res.metrics.find("accuracy");
  return it == res.metrics.end() ? NAN : MetricAsDouble(it->second);
}

}  // namespace

absl::Status RobustnessOptions::Validate() const {
  if (num_clients < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_clients is ", num_clients, "; it must be at least 1"));
  }
  if (num_malicious < 0 || num_malicious > num_clients) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_malicious is ", num_malicious,
                     "; it must be in [0, num_clients = ", num_clients, "]"));
  }
  if (examples_per_client < 1) {
    return absl::InvalidArgumentError(absl::StrCat("examples_per_client is ",
                                                   examples_per_client,
                                                   "; it must be at least 1"));
  }
  if (rounds < 1) {
    return absl::InvalidArgumentError("rounds must be at least 1");
  }
  if (local_epochs < 1 || batch_size < 1) {
    return absl::InvalidArgumentError(
        "local_epochs and batch_size must be at least 1");
  }
  if (!(learning_rate > 0) || !(momentum >= 0 && momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate ", learning_rate,
                     " must be > 0 and momentum ", momentum, " in [0, 1)"));
  }
  return absl::OkStatus();
}

nlohmann::json StrategyParamsFor(const std::string& strategy, int num_clients,
                                 int num_malicious) {
  if (strategy == "krum" || strategy == "bulyan") {
    return {{"num_malicious", num_malicious}};
  }
  if (strategy == "multikrum") {
    return {{"num_malicious", num_malicious},
            {"num_selected", num_clients - num_malicious}};
  }
  if (strategy == "fedtrimmedavg") {
    // floor(beta * n) = f values dropped from each side, clear of rounding.
    return {{"beta", (num_malicious + 0.5) / num_clients}};
  }
  return nlohmann::json::object();
}

absl::StatusOr<std::unique_ptr<RobustnessExperiment>>
RobustnessExperiment::Create(RobustnessOptions options) {
  SHOAL_RETURN_IF_ERROR(options.Validate());
  auto experiment = std::unique_ptr<RobustnessExperiment>(
      new RobustnessExperiment(std::move(options)));
  const RobustnessOptions& o = experiment->options_;

  // Fashion-MNIST, normalized with its own mean and std.
  client::DataOptions data;
  data.dir = o.data_dir;
  data.normalization.mode = client::Normalization::Mode::kGiven;
  data.normalization.mean = {0.2860};
  data.normalization.std = {0.3530};
  const client::Task task;
  SHOAL_ASSIGN_OR_RETURN(client::Dataset train,
                         client::LoadData(data, client::Split::kTrain, task));
  SHOAL_ASSIGN_OR_RETURN(experiment->test_, client::LoadData(data, client::Split::kTest, task));
  if (train.size() < o.examples_per_client * o.num_clients) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.num_clients, " clients of ", o.examples_per_client,
        " examples need more than the ", train.size(), " in ", o.data_dir));
  }
  // As many IID shards of examples_per_client as the training set holds;
  // the clients take the first num_clients of them.
  client::PartitionOptions partition;
  partition.scheme = client::PartitionScheme::kIid;
  partition.num_partitions =
      static_cast<int>(train.size() / o.examples_per_client);
  partition.seed = o.seed;
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> shards,
                         client::Partition(train.targets, partition));

  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, client::ParseModelSpec(o.model));
  SHOAL_ASSIGN_OR_RETURN(spec, client::ResolveModelShape(spec, client::InputShape(train), 10));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> initial,
                         client::CreateModel(spec, o.seed));
  experiment->initial_ = initial->GetParameters().Clone();
  for (int i = 0; i < o.num_clients; ++i) {
    // The client's own weights are replaced by the global model every round.
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                           client::CreateModel(spec));
    client::TrainerOptions trainer_options;
    trainer_options.seed =
        SplitMix64(SplitMix64(o.seed) ^ static_cast<uint64_t>(i));
    SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer,
                           client::Trainer::Create(trainer_options));
    std::vector<int64_t>& shard = shards[i];
    shard.resize(static_cast<size_t>(
        std::min<int64_t>(o.examples_per_client, shard.size())));
    experiment->clients_.push_back(std::make_unique<client::LocalClient>(
        std::move(model), std::move(trainer), train.Subset(shard),
        client::Dataset{}));
  }
  return experiment;
}

absl::StatusOr<TrialResult> RobustnessExperiment::Run(
    const std::string& strategy_name, const AttackOptions& attack) {
  const RobustnessOptions& o = options_;
  const absl::Time start = absl::Now();
  StrategyContext context;
  context.fit_config.set_local_epochs(o.local_epochs);
  context.fit_config.set_batch_size(o.batch_size);
  context.fit_config.set_learning_rate(o.learning_rate);
  context.fit_config.set_momentum(o.momentum);
  context.min_fit_clients = static_cast<uint32_t>(o.num_clients);
  context.seed = o.seed;
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<Strategy> strategy,
      CreateStrategy(
          strategy_name,
          StrategyParamsFor(strategy_name, o.num_clients, o.num_malicious),
          context));
  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, client::ParseModelSpec(o.model));
  SHOAL_ASSIGN_OR_RETURN(spec, client::ResolveModelShape(spec, client::InputShape(test_), 10));
  SHOAL_ASSIGN_OR_RETURN(client::DatasetEvaluator evaluator,
                         client::MakeDatasetEvaluator(spec, client::Task(), test_));
  strategy->set_server_evaluator(std::move(evaluator));

  SHOAL_ASSIGN_OR_RETURN(ScratchDir scratch, ScratchDir::Create());
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ModelStore> store,
                         ModelStore::Open(scratch.path() + "/models", o.model));
  ClientManager clients;
  for (int i = 0; i < o.num_clients; ++i) {
    AttackOptions own = attack;
    own.seed = attack.seed + static_cast<uint64_t>(i);
    if (i >= o.num_malicious) own.mode = AttackMode::kNone;
    clients.Register(std::make_shared<LocalClientProxy>(
        absl::StrFormat("client-%02d", i), clients_[i].get(), own));
  }

  CoordinatorOptions coordinator_options;
  coordinator_options.num_rounds = o.rounds;
  coordinator_options.sampling.fraction = 1.0;
  coordinator_options.sampling.min_clients =
      static_cast<uint32_t>(o.num_clients);
  coordinator_options.min_fit_clients = static_cast<uint32_t>(o.num_clients);
  coordinator_options.min_available_clients =
      static_cast<uint32_t>(o.num_clients);
  // Every client answers before Fit returns: the deadlines never bite.
  coordinator_options.round_timeout = absl::Hours(1);
  coordinator_options.wait_for_clients_timeout = absl::Seconds(10);
  coordinator_options.seed = o.seed;
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<Coordinator> coordinator,
      Coordinator::Create(coordinator_options, &clients, strategy.get(),
                          store.get(), initial_.Clone()));
  SHOAL_ASSIGN_OR_RETURN(std::vector<RoundRecord> history, coordinator->Run());

  TrialResult result;
  for (const RoundRecord& r : history) {
    if (!r.server_eval) {
      return absl::InternalError(
          absl::StrCat("round ", r.round, " has no server-side evaluation"));
    }
    result.accuracy.push_back(Accuracy(*r.server_eval));
    result.final_loss = r.server_eval->loss;
    if (r.round == 0) continue;
    result.refused += static_cast<int64_t>(r.failures.size());
    if (result.first_refusal.empty() && !r.failures.empty()) {
      result.first_refusal = std::string(r.failures[0].status.message());
    }
    if (!r.model_updated) ++result.rounds_unchanged;
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

}  // namespace shoal::bench
