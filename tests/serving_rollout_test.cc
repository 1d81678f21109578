// Serving versions over the wire (docs/lifecycle.md): a real server on
// 127.0.0.1 offers its catalog's serving version on every poll; devices that
// train for a run at the same time fetch it, judge it with their guard,
// serve it (or keep the one they have) and report back, while their
// predictions never fail.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/agent.h"
#include "client/local_client.h"
#include "client/serving_runtime.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/client_manager.h"
#include "server/coordinator.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "server/rollout.h"
#include "server/serving_catalog.h"
#include "strategies/fedavg.h"
#include "tests/service_testing.h"
#include "tests/signing_testing.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

constexpr char kSpec[] = "logreg-1x28x28-10";

// HotPixels: images whose class k lights pixel k, so a logreg can be right
// (weight 10 from pixel k to class k) or wrong on purpose.
client::Dataset HotPixels(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor y = at::randint(0, 10, {n}, gen, at::kLong);
  at::Tensor x = at::zeros({n, 1, 28, 28});
  for (int64_t i = 0; i < n; ++i) x[i][0][0][y[i].item<int64_t>()] = 1.0f;
  return {x, y};
}

// Logreg returns a logreg that maps pixel k to class (k + shift) % 10:
// right with shift 0, always wrong otherwise.
Parameters Logreg(int shift) {
  std::unique_ptr<client::Model> m = *client::CreateModel(*client::ParseModelSpec(kSpec), 1);
  Parameters p = m->GetParameters().Clone();
  for (size_t i = 0; i < p.size(); ++i) {
    at::Tensor& t = p.mutable_tensor(i);
    t.zero_();
    if (t.dim() == 2) {
      for (int k = 0; k < 10; ++k) t[(k + shift) % 10][k] = 10.0f;
    }
  }
  return p;
}

class ServingRolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::SigningKeys keys = testing::MakeSigningKeys(dir_, "model-signing");
    verifier_ = keys.verifier;
    signer_ = keys.signer;
    catalog_ = *ServingCatalog::Open({dir_.File("serving"), signer_, verifier_, 20});
  }
  void TearDown() override { StopFleet(); }

  // Trained writes `params` as training version 0 of run `run`, signed.
  std::string Trained(const std::string& run, const Parameters& params) {
    const std::string models = dir_.File(run + "/models");
    const std::string payload = SerializeParameters(params);
    ModelRecord r;
    r.model_spec = kSpec;
    r.signature = *signer_->Sign(SignedModel{0, Sha256(payload), kSpec, ""});
    EXPECT_TRUE(WriteModelVersion(models, r, payload).ok());
    return models;
  }

  // StartFleet starts a real server on 127.0.0.1 offering the catalog's
  // versions (through `rollout` when given), devices `ids` that each train
  // for a run and serve predictions, the run, and a caller predicting on the
  // first device all along.
  void StartFleet(const std::vector<std::string>& ids, Rollout* rollout = nullptr) {
    store_ = *ModelStore::Open(dir_.File("run/models"), kSpec, signer_);
    FederationServiceOptions service_options =
        testing::PlaintextServiceOptions(absl::Milliseconds(100), "rollout-test");
    service_options.serving = catalog_.get();
    service_options.rollout = rollout;
    service_ = std::make_unique<FederationService>(service_options, &clients_, store_.get());
    const std::string address = absl::StrCat("127.0.0.1:", testing::PickUnusedPort());
    server_ = *GrpcServer::Start(address, service_.get(), nullptr);
    for (size_t d = 0; d < ids.size(); ++d) {
      locals_.push_back(std::make_unique<client::LocalClient>(
          *client::CreateModel(*client::ParseModelSpec(kSpec), 1),
          *client::Trainer::Create({}), HotPixels(40, 10 + d), client::Dataset{}));
      client::ServingRuntimeOptions serving;
      serving.store = {dir_.File(ids[d] + "/serving"), verifier_, 2};
      runtimes_.push_back(
          *client::ServingRuntime::Open(serving, client::InMemory(HotPixels(100, 20 + d))));
      client::AgentOptions options;
      options.server_address = address;
      options.client_id = ids[d];
      options.state_dir = dir_.File(ids[d] + "/state");
      options.model_code = {kSpec, ""};
      options.model_verifier = verifier_;
      options.give_up_after = absl::Seconds(30);
      options.rpc_timeout = absl::Seconds(20);
      options.serving = runtimes_.back().get();
      agents_.push_back(std::make_unique<client::Agent>(options, locals_.back().get()));
    }
    for (auto& agent : agents_) threads_.emplace_back([&agent] { (void)agent->Run(); });
    // A run trains meanwhile, for as long as the test needs.
    CoordinatorOptions options;
    options.num_rounds = 10000;
    options.min_fit_clients = static_cast<uint32_t>(ids.size());
    options.min_available_clients = options.min_fit_clients;
    options.round_timeout = absl::Seconds(30);
    options.wait_for_clients_timeout = absl::Seconds(30);
    FedAvgOptions fedavg_options;
    fedavg_options.fit_config.set_local_epochs(1);
    fedavg_options.fit_config.set_batch_size(10);
    fedavg_options.fit_config.set_learning_rate(0.1);
    fedavg_ = std::make_unique<FedAvg>(fedavg_options);
    coordinator_ = *Coordinator::Create(options, &clients_, fedavg_.get(), store_.get(), Logreg(3));
    run_ = std::thread([this] { (void)coordinator_->Run(); });
    caller_ = std::thread([this] {
      const at::Tensor x = HotPixels(4, 99).inputs;
      while (!done_.load()) {
        absl::StatusOr<client::Served> s = runtimes_[0]->serving().Predict(x);
        if (s.ok()) {
          ++answered_;
        } else if (runtimes_[0]->version() > 0) {
          ++failed_;  // only before the first version is Unavailable allowed
        }
        absl::SleepFor(absl::Milliseconds(2));
      }
    });
  }

  // WaitFleet waits until devices `ids` all reported having judged
  // serving version `offered`.
  bool WaitFleet(const std::vector<std::string>& ids, int64_t offered) {
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (absl::Now() < until) {
      const std::map<std::string, FleetServing> fleet = service_->Fleet();
      size_t judged = 0;
      for (const std::string& id : ids) {
        auto it = fleet.find(id);
        judged += it != fleet.end() && it->second.offered_version == offered;
      }
      if (judged == ids.size()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // StopFleet waits for a round to complete with every device (they train
  // for the run too), then stops everything.
  void StopFleet() {
    if (coordinator_ == nullptr) return;
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (store_->Latest()->version < 1 && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    trained_ = store_->Latest()->version;
    done_ = true;
    caller_.join();
    coordinator_->RequestStop();
    run_.join();
    for (auto& agent : agents_) agent->Stop();
    for (auto& t : threads_) t.join();
    server_->Shutdown();
    coordinator_.reset();
  }

  testing::TempDir dir_;
  std::shared_ptr<const ModelVerifier> verifier_;
  std::shared_ptr<const ModelSigner> signer_;
  std::unique_ptr<ServingCatalog> catalog_;
  std::unique_ptr<Rollout> rollout_;
  std::unique_ptr<ModelStore> store_;
  ClientManager clients_;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::vector<std::unique_ptr<client::LocalClient>> locals_;
  std::vector<std::unique_ptr<client::ServingRuntime>> runtimes_;
  std::vector<std::unique_ptr<client::Agent>> agents_;
  std::vector<std::thread> threads_;
  std::unique_ptr<FedAvg> fedavg_;
  std::unique_ptr<Coordinator> coordinator_;
  std::thread run_, caller_;
  std::atomic<bool> done_{false};
  std::atomic<int64_t> failed_{0}, answered_{0};
  int64_t trained_ = 0;
};

TEST_F(ServingRolloutTest, DevicesTakeAPromotedVersionRefuseAWorseOneAndTakeTheRollback) {
  const std::vector<std::string> ids = {"device-0", "device-1"};
  StartFleet(ids);
  // 1: a good model promoted: every device takes it (nothing served before).
  ASSERT_TRUE(catalog_->Promote("good-run", Trained("good-run", Logreg(0))).ok());
  ASSERT_TRUE(WaitFleet(ids, 1));
  for (const auto& runtime : runtimes_) EXPECT_EQ(runtime->version(), 1);
  // 2: a model made worse on purpose: every device's guard refuses it.
  ASSERT_TRUE(catalog_->Promote("bad-run", Trained("bad-run", Logreg(1))).ok());
  ASSERT_TRUE(WaitFleet(ids, 2));
  for (const auto& [id, entry] : service_->Fleet()) {
    EXPECT_FALSE(entry.accepted) << id;
    EXPECT_EQ(entry.serving_version, 1) << id;
    EXPECT_EQ(entry.metric, "accuracy");
    EXPECT_DOUBLE_EQ(entry.offered_value, 0.0);
    EXPECT_DOUBLE_EQ(entry.current_value, 1.0);
    EXPECT_THAT(entry.reason, HasSubstr("beyond the margin"));
  }
  for (const auto& runtime : runtimes_) EXPECT_EQ(runtime->version(), 1);
  // 3: the rollback serves the good model again under a new number.
  ASSERT_TRUE(catalog_->Rollback().ok());
  ASSERT_TRUE(WaitFleet(ids, 3));
  for (const auto& [id, entry] : service_->Fleet()) {
    EXPECT_TRUE(entry.accepted) << id << ": " << entry.reason;
    EXPECT_EQ(entry.serving_version, 3) << id;
  }
  StopFleet();
  EXPECT_EQ(failed_.load(), 0);
  EXPECT_GT(answered_.load(), 0);
  EXPECT_GE(trained_, 1);
}

// Staged: a worse version goes to the canary half of the fleet only; their
// guards refuse it, the rollout reverts by itself, and the other devices
// are never offered it.
TEST_F(ServingRolloutTest, ACanaryRefusesAWorseVersionAndTheRestOfTheFleetNeverSeesIt) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  options.min_canary_reports = 2;
  rollout_ = std::make_unique<Rollout>(options, catalog_.get());  // outlives the server
  Rollout& rollout = *rollout_;
  // Four devices, two of them in version 2's canary (by the hash).
  std::vector<std::string> canaries, others;
  for (int i = 0; canaries.size() < 2 || others.size() < 2; ++i) {
    const std::string id = absl::StrCat("device-", i);
    std::vector<std::string>& side = rollout.IsCanary(id, 2) ? canaries : others;
    if (side.size() < 2) side.push_back(id);
  }
  std::vector<std::string> ids = others;
  ids.insert(ids.end(), canaries.begin(), canaries.end());
  StartFleet(ids, rollout_.get());
  ASSERT_TRUE(rollout.Promote("good-run", Trained("good-run", Logreg(0))).ok());
  ASSERT_TRUE(WaitFleet(ids, 1));
  ASSERT_TRUE(rollout.Promote("bad-run", Trained("bad-run", Logreg(1))).ok());
  ASSERT_EQ(rollout.status().stage, RolloutStage::kCanary);
  // The canaries refuse version 2; the rollout reverts to version 3 (the
  // good weights), which every device takes.
  ASSERT_TRUE(WaitFleet(ids, 3));
  const RolloutStatus status = rollout.status();
  EXPECT_EQ(status.stage, RolloutStage::kReverted);
  EXPECT_THAT(status.reason, HasSubstr("canary devices refused it"));
  EXPECT_EQ(status.canary_refusals, status.canary_reports);
  for (const auto& [id, entry] : service_->Fleet()) {
    EXPECT_EQ(entry.serving_version, 3) << id;
  }
  // The devices outside the canary never held or judged version 2.
  for (size_t d = 0; d < others.size(); ++d) {
    absl::StatusOr<ServingStore> store =
        ServingStore::Open({dir_.File(others[d] + "/serving"), verifier_, 2});
    ASSERT_TRUE(store.ok());
    for (int64_t v : store->versions()) EXPECT_NE(v, 2) << others[d];
  }
  StopFleet();
  EXPECT_EQ(failed_.load(), 0);
}

}  // namespace
}  // namespace shoal
