// Serving versions over the wire (docs/lifecycle.md): a real server on
// 127.0.0.1 offers its catalog's serving version on every poll; devices that
// train for a run at the same time fetch it, judge it with their guard,
// serve it (or keep the one they have) and report back, while their
// predictions never fail.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <atomic>
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
    keys_ = testing::WriteSigningKeys(dir_, "model-signing");
    verifier_ = *ModelVerifier::Load(keys_.public_key);
    signer_ = *ModelSigner::Load(keys_.private_key);
  }

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

  testing::TempDir dir_;
  testing::SigningKeyFiles keys_;
  std::shared_ptr<const ModelVerifier> verifier_;
  std::shared_ptr<const ModelSigner> signer_;
};

TEST_F(ServingRolloutTest, DevicesTakeAPromotedVersionRefuseAWorseOneAndTakeTheRollback) {
  std::unique_ptr<ServingCatalog> catalog =
      *ServingCatalog::Open({dir_.File("serving"), signer_, verifier_, 20});
  std::unique_ptr<ModelStore> store = *ModelStore::Open(dir_.File("run/models"), kSpec, signer_);
  ClientManager clients;
  FederationServiceOptions service_options =
      testing::PlaintextServiceOptions(absl::Milliseconds(100), "rollout-test");
  service_options.serving = catalog.get();
  FederationService service(service_options, &clients, store.get());
  const std::string address = absl::StrCat("127.0.0.1:", testing::PickUnusedPort());
  std::unique_ptr<GrpcServer> server = *GrpcServer::Start(address, &service, nullptr);

  // Two devices: each trains for the run and serves predictions.
  constexpr int kDevices = 2;
  std::vector<std::unique_ptr<client::LocalClient>> locals;
  std::vector<std::unique_ptr<client::ServingRuntime>> runtimes;
  std::vector<std::unique_ptr<client::Agent>> agents;
  std::vector<std::thread> threads;
  for (int d = 0; d < kDevices; ++d) {
    locals.push_back(std::make_unique<client::LocalClient>(
        *client::CreateModel(*client::ParseModelSpec(kSpec), 1),
        *client::Trainer::Create({}), HotPixels(40, 10 + d), client::Dataset{}));
    client::ServingRuntimeOptions serving;
    serving.store = {dir_.File(absl::StrCat("device-", d, "/serving")), verifier_, 2};
    runtimes.push_back(*client::ServingRuntime::Open(
        serving, client::InMemory(HotPixels(100, 20 + d))));
    client::AgentOptions options;
    options.server_address = address;
    options.client_id = absl::StrCat("device-", d);
    options.state_dir = dir_.File(absl::StrCat("device-", d, "/state"));
    options.model_code = {kSpec, ""};
    options.model_verifier = verifier_;
    options.give_up_after = absl::Seconds(30);
    options.rpc_timeout = absl::Seconds(20);
    options.serving = runtimes.back().get();
    agents.push_back(std::make_unique<client::Agent>(options, locals.back().get()));
  }
  for (auto& agent : agents) threads.emplace_back([&agent] { (void)agent->Run(); });

  // A run trains meanwhile, for as long as the test needs.
  CoordinatorOptions options;
  options.num_rounds = 10000;
  options.min_fit_clients = kDevices;
  options.min_available_clients = kDevices;
  options.round_timeout = absl::Seconds(30);
  options.wait_for_clients_timeout = absl::Seconds(30);
  FedAvgOptions fedavg_options;
  fedavg_options.fit_config.set_local_epochs(1);
  fedavg_options.fit_config.set_batch_size(10);
  fedavg_options.fit_config.set_learning_rate(0.1);
  FedAvg fedavg(fedavg_options);
  auto coordinator = *Coordinator::Create(options, &clients, &fedavg, store.get(), Logreg(3));
  std::thread run([&] { (void)coordinator->Run(); });

  // Predictions on device 0 all along.
  std::atomic<bool> done{false};
  std::atomic<int64_t> failed{0}, answered{0};
  std::thread caller([&] {
    const at::Tensor x = HotPixels(4, 99).inputs;
    while (!done.load()) {
      absl::StatusOr<client::Served> s = runtimes[0]->serving().Predict(x);
      if (s.ok()) {
        ++answered;
      } else if (runtimes[0]->version() > 0) {
        ++failed;  // only before the first version is Unavailable allowed
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  });
  // WaitFleet waits until every device reported having judged `offered`.
  auto wait_fleet = [&](int64_t offered) {
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (absl::Now() < until) {
      int judged = 0;
      for (const auto& [id, entry] : service.Fleet()) judged += entry.offered_version == offered;
      if (judged == kDevices) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  };

  // 1: a good model promoted: every device takes it (nothing served before).
  ASSERT_TRUE(catalog->Promote("good-run", Trained("good-run", Logreg(0))).ok());
  ASSERT_TRUE(wait_fleet(1));
  for (int d = 0; d < kDevices; ++d) EXPECT_EQ(runtimes[d]->version(), 1) << d;
  // 2: a model made worse on purpose: every device's guard refuses it.
  ASSERT_TRUE(catalog->Promote("bad-run", Trained("bad-run", Logreg(1))).ok());
  ASSERT_TRUE(wait_fleet(2));
  for (const auto& [id, entry] : service.Fleet()) {
    EXPECT_FALSE(entry.accepted) << id;
    EXPECT_EQ(entry.serving_version, 1) << id;
    EXPECT_EQ(entry.metric, "accuracy");
    EXPECT_DOUBLE_EQ(entry.offered_value, 0.0);
    EXPECT_DOUBLE_EQ(entry.current_value, 1.0);
    EXPECT_THAT(entry.reason, HasSubstr("beyond the margin"));
  }
  for (int d = 0; d < kDevices; ++d) EXPECT_EQ(runtimes[d]->version(), 1) << d;
  // 3: the rollback serves the good model again under a new number.
  ASSERT_TRUE(catalog->Rollback().ok());
  ASSERT_TRUE(wait_fleet(3));
  for (const auto& [id, entry] : service.Fleet()) {
    EXPECT_TRUE(entry.accepted) << id << ": " << entry.reason;
    EXPECT_EQ(entry.serving_version, 3) << id;
  }

  // The devices train for the run too: a round completes with both.
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (store->Latest()->version < 1 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
  done = true;
  caller.join();
  coordinator->RequestStop();
  run.join();
  for (auto& agent : agents) agent->Stop();
  for (auto& t : threads) t.join();
  server->Shutdown();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(answered.load(), 0);
  EXPECT_GE(store->Latest()->version, 1);
}

}  // namespace
}  // namespace shoal
