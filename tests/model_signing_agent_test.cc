// Signed models over the real wire: a client::Agent with the model-signing
// public key, against a real FederationService + Coordinator on 127.0.0.1
// (signed and unsigned stores), and against a hand-written man in the
// middle that serves altered weights under the genuine signature.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/agent.h"
#include "client/inference.h"
#include "client/local_client.h"
#include "common/chunking.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/client_manager.h"
#include "server/coordinator.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "strategies/fedavg.h"
#include "tests/signing_testing.h"
#include "tests/service_testing.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

Parameters InitialLogreg() {
  return (*client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), /*seed=*/42))
      ->GetParameters()
      .Clone();
}

// MakeLocalClient: a device's client half with the model `code` names.
std::unique_ptr<client::LocalClient> MakeLocalClient(const ModelCode& code = {"logreg-1x28x28-10", ""}) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  client::Dataset train{at::randn({20, 1, 28, 28}, gen), at::randint(0, 10, {20}, gen, at::kLong)};
  client::TrainerOptions trainer;
  trainer.seed = 1;
  return std::make_unique<client::LocalClient>(
      *client::CreateModelFromCode(code, /*seed=*/1),
      *client::Trainer::Create(trainer), std::move(train), client::Dataset{});
}

class ManInTheMiddle;

class ModelSigningAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = testing::WriteSigningKeys(dir_, "model-signing");
    verifier_ = *ModelVerifier::Load(keys_.public_key);
    signer_ = *ModelSigner::Load(keys_.private_key);
    local_ = MakeLocalClient();
  }

  client::AgentOptions Options(const std::string& address) {
    client::AgentOptions options;
    options.server_address = address;
    options.client_id = "device-0";
    options.state_dir = dir_.File("device-0");
    options.model_code = device_code_;
    options.give_up_after = absl::Seconds(20);
    options.rpc_timeout = absl::Seconds(20);
    options.model_verifier = verifier_;
    return options;
  }

  // RunFederation runs `rounds` rounds of a real server whose store signs
  // with `signer` (null: unsigned) against one verifying agent, and returns
  // the history. The agent's status lands in agent_status_.
  // `model` is the server's configured model (the device's is logreg).
  std::vector<RoundRecord> RunFederation(std::shared_ptr<const ModelSigner> signer, uint32_t rounds,
                                         const std::string& model = "logreg-1x28x28-10") {
    store_ = *ModelStore::Open(dir_.File("server"), model, std::move(signer));
    // Plaintext: this test is about signatures; tls_test covers transport.
    FederationService service(
        testing::PlaintextServiceOptions(absl::Milliseconds(200), "signing-test"), &clients_,
        store_.get());
    const int port = testing::PickUnusedPort();
    EXPECT_GT(port, 0);
    const std::string address = absl::StrCat("127.0.0.1:", port);
    absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(address, &service, nullptr);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return {};

    CoordinatorOptions options;
    options.num_rounds = rounds;
    options.min_fit_clients = 1;
    options.min_available_clients = 1;
    options.round_timeout = absl::Seconds(30);
    options.wait_for_clients_timeout = absl::Seconds(30);
    FedAvgOptions fedavg_options;
    fedavg_options.fit_config.set_local_epochs(1);
    fedavg_options.fit_config.set_batch_size(10);
    fedavg_options.fit_config.set_learning_rate(0.1);
    FedAvg fedavg(fedavg_options);
    auto coordinator =
        *Coordinator::Create(options, &clients_, &fedavg, store_.get(),
                             (*client::CreateModel(*client::ParseModelSpec(model), /*seed=*/42))
                                 ->GetParameters()
                                 .Clone());
    client::Agent agent(Options(address), local_.get());
    std::thread device([&] { agent_status_ = agent.Run(); });
    absl::StatusOr<std::vector<RoundRecord>> history = coordinator->Run();
    // The coordinator told the device the run is over; it leaves by itself.
    const absl::Time until = absl::Now() + absl::Seconds(20);
    while (clients_.Find("device-0") != nullptr && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    agent.Stop();
    device.join();
    (*server)->Shutdown();
    EXPECT_TRUE(history.ok()) << history.status();
    return history.ok() ? *history : std::vector<RoundRecord>{};
  }

  testing::TempDir dir_;
  testing::SigningKeyFiles keys_;
  std::shared_ptr<const ModelVerifier> verifier_;
  std::shared_ptr<const ModelSigner> signer_;
  std::unique_ptr<client::LocalClient> local_;
  std::unique_ptr<ModelStore> store_;
  ClientManager clients_;
  // Defined after ManInTheMiddle.
  void RunDeviceAgainst(ManInTheMiddle& mitm, client::AgentStats* stats = nullptr);

  absl::Status agent_status_;
  // The device's configured model.
  ModelCode device_code_{"logreg-1x28x28-10", ""};
};

TEST_F(ModelSigningAgentTest, ASignedModelIsVerifiedTrainedAndCachedWithItsSignature) {
  std::vector<RoundRecord> history = RunFederation(signer_, /*rounds=*/2);
  ASSERT_EQ(history.size(), 3u);  // round 0 (initial model) and two rounds
  for (uint32_t r = 1; r <= 2; ++r) {
    EXPECT_EQ(history[r].answered, 1u) << r;
    EXPECT_TRUE(history[r].failures.empty()) << history[r].failures[0].status;
    EXPECT_TRUE(history[r].model_updated) << r;
  }
  EXPECT_TRUE(agent_status_.ok()) << agent_status_;

  // The device keeps the final version with the signature Poll sent, and it
  // verifies offline.
  const ModelRecord server_final = *store_->Latest();
  ModelRecord mine;
  absl::StatusOr<Parameters> cached =
      LoadModelParameters(dir_.File("device-0"), &mine, kLatestVersion, verifier_.get());
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(mine.version, 2);
  EXPECT_EQ(mine.sha256_hex, server_final.sha256_hex);
  EXPECT_EQ(mine.signature, server_final.signature);
  EXPECT_EQ(mine.signature.size(), kModelSignatureBytes);
}

TEST_F(ModelSigningAgentTest, AnUnsignedModelIsRefusedAndNeverCached) {
  std::vector<RoundRecord> history = RunFederation(/*signer=*/nullptr, /*rounds=*/1);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].answered, 0u);
  EXPECT_FALSE(history[1].model_updated);
  ASSERT_EQ(history[1].failures.size(), 1u);
  // The device said why at once (well inside the 30 s round timeout).
  EXPECT_THAT(history[1].failures[0].status.message(),
              HasSubstr("model version 0 has no signature"));
  EXPECT_LT(history[1].seconds, 20);
  EXPECT_TRUE(agent_status_.ok()) << agent_status_;
  EXPECT_EQ(ReadModelRecord(dir_.File("device-0")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelSigningAgentTest, TheServersTorchScriptCodeIsFetchedVerifiedRunAndCached) {
  // The device was built with logreg; the server runs a TorchScript model.
  // The server's signed code wins: the device fetches it, trains with it,
  // and keeps it for offline inference.
  std::vector<RoundRecord> history = RunFederation(signer_, /*rounds=*/1, SHOAL_TINY_TORCHSCRIPT);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].answered, 1u);
  EXPECT_TRUE(history[1].failures.empty()) << history[1].failures[0].status;
  EXPECT_TRUE(history[1].model_updated);
  EXPECT_TRUE(agent_status_.ok()) << agent_status_;
  EXPECT_EQ(local_->model().GetParameters().name(0), "fc1.weight");

  const std::string code = *ReadFile(SHOAL_TINY_TORCHSCRIPT);
  const std::string device = dir_.File("device-0");
  ModelRecord mine = *ReadModelRecord(device);
  EXPECT_EQ(mine.model_spec, kTorchScriptModelSpec);
  EXPECT_EQ(mine.code_sha256_hex, Sha256Hex(code));
  EXPECT_EQ(*ReadModelCodeFile(device, mine.code_sha256_hex), code);
  ModelRecord loaded;
  absl::StatusOr<std::unique_ptr<client::Model>> offline =
      client::LoadStoredModel(device, &loaded, "", verifier_.get());
  ASSERT_TRUE(offline.ok()) << offline.status();
  EXPECT_EQ(loaded.version, 1);
}

TEST_F(ModelSigningAgentTest, CodeLargerThanAChunkIsDownloadedInChunks) {
  const std::string code = *ReadFile(SHOAL_WIDE_TORCHSCRIPT);
  ASSERT_GT(code.size(), kChunkBytes);  // so the download takes several chunks
  std::vector<RoundRecord> history = RunFederation(signer_, /*rounds=*/1, SHOAL_WIDE_TORCHSCRIPT);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].answered, 1u);
  EXPECT_TRUE(agent_status_.ok()) << agent_status_;
  EXPECT_EQ(*ReadModelCodeFile(dir_.File("device-0"), Sha256Hex(code)), code);
}

TEST_F(ModelSigningAgentTest, TamperedCodeInTheDevicesCacheIsRefusedAndFetchedAgain) {
  // The device's cache holds version 1 of a TorchScript run...
  ASSERT_EQ(RunFederation(signer_, /*rounds=*/1, SHOAL_TINY_TORCHSCRIPT).size(), 2u);
  const std::string device = dir_.File("device-0");
  const std::string code_hex = ReadModelRecord(device)->code_sha256_hex;
  const std::string code_path = device + "/" + ModelCodeFile(code_hex);
  // ...whose code someone replaced with other code of the same parameters.
  ASSERT_TRUE(WriteFileAtomically(code_path, *ReadFile(SHOAL_NEGATED_TORCHSCRIPT)).ok());
  absl::Status refused = client::LoadStoredModel(device, nullptr, "", verifier_.get()).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("does not match the SHA-256 in its name"));

  // A new run: the agent does not use the tampered code, fetches the
  // server's again, trains, and its cache is whole again.
  clients_.Unregister("device-0");
  local_ = MakeLocalClient();
  std::vector<RoundRecord> history = RunFederation(signer_, /*rounds=*/1, SHOAL_TINY_TORCHSCRIPT);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].answered, 1u);
  EXPECT_TRUE(agent_status_.ok()) << agent_status_;
  EXPECT_EQ(*ReadFile(code_path), *ReadFile(SHOAL_TINY_TORCHSCRIPT));
  EXPECT_TRUE(client::LoadStoredModel(device, nullptr, "", verifier_.get()).ok());
}

// ManInTheMiddle impersonates the server: it announces model version 2
// with the SHA-256 of the bytes it will serve (altered weights) and the
// genuine signature of the real version 2, then ends the run with the same
// model as the final one. It records what the device reports.
class ManInTheMiddle final : public v1::Federation::Service {
 public:
  // With `code`, the model is TorchScript and that is the code served (and
  // announced by its hash).
  ManInTheMiddle(std::string altered_payload, std::string genuine_signature, std::string code = "")
      : payload_(std::move(altered_payload)), code_(std::move(code)) {
    model_.set_version(2);
    model_.set_sha256(Sha256(payload_.payload()));
    model_.set_size_bytes(payload_.payload().size());
    model_.set_signature(std::move(genuine_signature));
    model_.set_model_spec(code_.payload().empty() ? "logreg-1x28x28-10" : kTorchScriptModelSpec);
    if (!code_.payload().empty()) {
      model_.set_code_sha256(code_.header().sha256());
      model_.set_code_size_bytes(code_.payload().size());
    }
  }

  grpc::Status DownloadModelCode(grpc::ServerContext*, const v1::DownloadModelCodeRequest*,
                                 grpc::ServerWriter<v1::Chunk>* writer) override {
    absl::MutexLock lock(&mu_);
    ++code_downloads_;
    for (uint32_t i = 0; i < code_.num_chunks(); ++i) {
      v1::Chunk chunk;
      code_.FillChunk(i, &chunk);
      writer->Write(chunk);
    }
    return grpc::Status::OK;
  }

  grpc::Status Join(grpc::ServerContext*, const v1::JoinRequest*,
                    v1::JoinResponse* resp) override {
    resp->set_poll_interval_ms(200);
    return grpc::Status::OK;
  }

  grpc::Status Poll(grpc::ServerContext*, const v1::PollRequest*, v1::Task* task) override {
    absl::MutexLock lock(&mu_);
    switch (polls_++) {
      case 0:
        task->set_task_id("fit-r2-1");
        task->mutable_fit()->set_round(2);
        *task->mutable_fit()->mutable_model() = model_;
        task->mutable_fit()->mutable_config()->set_local_epochs(1);
        task->mutable_fit()->mutable_config()->set_batch_size(10);
        task->mutable_fit()->mutable_config()->set_learning_rate(0.1);
        break;
      case 1:
        task->set_task_id("shutdown");
        task->mutable_shutdown()->set_reason("run complete");
        *task->mutable_shutdown()->mutable_final_model() = model_;
        break;
      default:
        task->mutable_wait()->set_retry_after_ms(100);
    }
    return grpc::Status::OK;
  }

  grpc::Status DownloadModel(grpc::ServerContext*, const v1::DownloadModelRequest* req,
                             grpc::ServerWriter<v1::Chunk>* writer) override {
    absl::MutexLock lock(&mu_);
    ++downloads_;
    for (uint32_t i = 0; i < payload_.num_chunks(); ++i) {
      v1::Chunk chunk;
      payload_.FillChunk(i, &chunk);
      writer->Write(chunk);
    }
    return grpc::Status::OK;
  }

  grpc::Status SubmitFit(grpc::ServerContext*, grpc::ServerReader<v1::SubmitFitRequest>* reader,
                         v1::SubmitResponse*) override {
    v1::SubmitFitRequest msg;
    absl::MutexLock lock(&mu_);
    while (reader->Read(&msg)) {
      if (msg.has_header()) {
        if (msg.header().error().empty()) ++updates_;
        else errors_.push_back(msg.header().error());
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Leave(grpc::ServerContext*, const v1::LeaveRequest*,
                     v1::LeaveResponse*) override {
    absl::MutexLock lock(&mu_);
    left_ = true;
    return grpc::Status::OK;
  }

  absl::Mutex mu_;
  const ChunkedPayload payload_;
  const ChunkedPayload code_;
  v1::ModelVersion model_;
  int code_downloads_ ABSL_GUARDED_BY(mu_) = 0;
  int polls_ ABSL_GUARDED_BY(mu_) = 0;
  int downloads_ ABSL_GUARDED_BY(mu_) = 0;
  int updates_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  bool left_ ABSL_GUARDED_BY(mu_) = false;
};

// RunDeviceAgainst serves `mitm` on 127.0.0.1 to this fixture's device
// until the device leaves (at most 30 s); the device's status lands in
// agent_status_, its counters in `stats`.
void ModelSigningAgentTest::RunDeviceAgainst(ManInTheMiddle& mitm, client::AgentStats* stats) {
  const std::string address = absl::StrCat("127.0.0.1:", testing::PickUnusedPort());
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(address, &mitm, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  client::Agent agent(Options(address), local_.get());
  std::thread device([&] { agent_status_ = agent.Run(); });
  {
    absl::MutexLock lock(&mitm.mu_);
    mitm.mu_.AwaitWithTimeout(absl::Condition(&mitm.left_), absl::Seconds(30));
  }
  agent.Stop();
  device.join();
  (*server)->Shutdown();
  if (stats != nullptr) *stats = agent.stats();
}

TEST_F(ModelSigningAgentTest, AlteredWeightsUnderTheGenuineSignatureAreRefused) {
  // The device already holds the genuine version 1, as a real server left it.
  const Parameters v1_params = InitialLogreg();
  const std::string v1_payload = SerializeParameters(v1_params);
  ModelRecord v1_record;
  v1_record.version = 1;
  v1_record.model_spec = "logreg-1x28x28-10";
  v1_record.signature = *signer_->Sign(SignedModel{1, Sha256(v1_payload), "logreg-1x28x28-10", ""});
  ASSERT_TRUE(WriteModelVersion(dir_.File("device-0"), v1_record, v1_payload).ok());

  // The genuine version 2, and what the interceptor makes of it.
  Parameters v2_params = v1_params.Clone();
  v2_params.mutable_tensor(0).add_(0.01);
  const std::string v2_signature =
      *signer_->Sign(SignedModel{2, Sha256(SerializeParameters(v2_params)), "logreg-1x28x28-10", ""});
  Parameters altered = v2_params.Clone();
  altered.mutable_tensor(0).view(-1)[0].fill_(100.0);  // a backdoor, say
  ManInTheMiddle mitm(SerializeParameters(altered), v2_signature);

  client::AgentStats stats;
  ASSERT_NO_FATAL_FAILURE(RunDeviceAgainst(mitm, &stats));

  EXPECT_TRUE(agent_status_.ok()) << agent_status_;  // the run ended; the model was refused
  {
    absl::MutexLock lock(&mitm.mu_);
    EXPECT_TRUE(mitm.left_);
    EXPECT_EQ(mitm.downloads_, 2);  // the fit task, then the final model
    EXPECT_EQ(mitm.updates_, 0);    // never trained on it
    ASSERT_EQ(mitm.errors_.size(), 1u);
    EXPECT_THAT(mitm.errors_[0], HasSubstr("model version 2's signature does not verify"));
  }
  EXPECT_EQ(stats.rounds, 0);
  // The last good model stays, on disk and verifiable; nothing of the
  // altered one was written.
  ModelRecord kept;
  absl::StatusOr<Parameters> cached =
      LoadModelParameters(dir_.File("device-0"), &kept, kLatestVersion, verifier_.get());
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(kept.version, 1);
  EXPECT_EQ(kept.sha256_hex, Sha256Hex(v1_payload));
  EXPECT_TRUE(at::equal(cached->tensor(0), v1_params.tensor(0)));
  EXPECT_EQ(ReadModelRecord(dir_.File("device-0"), 2).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ModelSigningAgentTest, OtherCodeUnderTheGenuineSignatureIsRefusedAndNeverCached) {
  // The genuine version 2 of a TorchScript run, signed with its code; the
  // interceptor serves the genuine weights with other code of the same
  // parameters (and announces that code's hash).
  const Parameters params = (*client::CreateModel(*client::ParseModelSpec(SHOAL_TINY_TORCHSCRIPT)))
                                ->GetParameters()
                                .Clone();
  const std::string payload = SerializeParameters(params);
  const std::string signature = *signer_->Sign(SignedModel{
      2, Sha256(payload), kTorchScriptModelSpec, Sha256(*ReadFile(SHOAL_TINY_TORCHSCRIPT))});
  ManInTheMiddle mitm(payload, signature, *ReadFile(SHOAL_NEGATED_TORCHSCRIPT));

  ASSERT_NO_FATAL_FAILURE(RunDeviceAgainst(mitm));

  EXPECT_TRUE(agent_status_.ok()) << agent_status_;
  {
    absl::MutexLock lock(&mitm.mu_);
    EXPECT_TRUE(mitm.left_);
    EXPECT_EQ(mitm.code_downloads_, 2);  // the fit task, then the final model
    EXPECT_EQ(mitm.updates_, 0);
    ASSERT_EQ(mitm.errors_.size(), 1u);
    EXPECT_THAT(mitm.errors_[0], HasSubstr("model version 2's signature does not verify"));
  }
  // The device still runs its own model, and nothing was cached.
  EXPECT_EQ(local_->model().GetParameters().name(0), InitialLogreg().name(0));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("device-0")) &&
               !std::filesystem::is_empty(dir_.File("device-0")));
}

TEST_F(ModelSigningAgentTest, AnUnverifyingDeviceRunsAnUnsignedServersTorchScript) {
  // --insecure-plaintext on both sides: no signer, no verifier. The code
  // still travels with the model and is checked against its hash.
  verifier_ = nullptr;
  // Its own config names the same TorchScript: unauthenticated code runs
  // only when it is the device's own.
  absl::StatusOr<ModelCode> own = ReadModelCode(SHOAL_TINY_TORCHSCRIPT);
  ASSERT_TRUE(own.ok()) << own.status();
  device_code_ = *own;
  local_ = MakeLocalClient(device_code_);
  std::vector<RoundRecord> history =
      RunFederation(/*signer=*/nullptr, /*rounds=*/1, SHOAL_TINY_TORCHSCRIPT);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].answered, 1u);
  EXPECT_TRUE(history[1].model_updated);
  EXPECT_TRUE(agent_status_.ok()) << agent_status_;
  const std::string device = dir_.File("device-0");
  EXPECT_TRUE(ReadModelRecord(device)->signature.empty());
  EXPECT_TRUE(client::LoadStoredModel(device, nullptr, "", nullptr).ok());
}

// Found in review of issue 14: a plaintext device configured with a
// built-in ran whatever TorchScript the server (or anyone on the path) sent.
TEST_F(ModelSigningAgentTest, AnUnverifyingDeviceRefusesTorchScriptItWasNotConfiguredWith) {
  verifier_ = nullptr;  // device_code_ stays logreg
  std::vector<RoundRecord> history =
      RunFederation(/*signer=*/nullptr, /*rounds=*/1, SHOAL_TINY_TORCHSCRIPT);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].answered, 0u);
  EXPECT_FALSE(history[1].model_updated);
  std::string failures;
  for (const ClientFailure& f : history[1].failures) failures += f.status.ToString();
  EXPECT_NE(failures.find("cannot authenticate"), std::string::npos) << failures;
  // Nothing of the server's code was cached for offline use.
  absl::StatusOr<ModelRecord> cached = ReadModelRecord(dir_.File("device-0"));
  EXPECT_FALSE(cached.ok() && !cached->code_sha256_hex.empty());
}

}  // namespace
}  // namespace shoal
