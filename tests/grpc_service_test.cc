// The server's gRPC face under bad input: a real FederationService on
// 127.0.0.1 with a real Coordinator, driven by a hand-written client that
// sends what a buggy or hostile device might.
#include "server/grpc_service.h"

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>

#include <limits>
#include <thread>

#include "common/chunking.h"
#include "common/files.h"
#include "common/metrics.h"
#include "common/pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "strategies/fedavg.h"
#include "tests/service_testing.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

// Plaintext service options: these tests exercise the service's logic;
// tls_test covers transport security and authentication.
Parameters Initial() {
  Parameters p;
  p.Add("w", at::zeros({4, 4}));
  p.Add("b", at::zeros({4}));
  return p;
}

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *ModelStore::Open(dir_.path(), "test");
    Serve(
        testing::PlaintextServiceOptions(absl::Milliseconds(500), "test-run"));
  }

  // Serve (re)starts the service with `options` on a fresh port.
  void Serve(FederationServiceOptions options) {
    if (server_ != nullptr) server_->Shutdown();
    service_ = std::make_unique<FederationService>(std::move(options),
                                                   &clients_, store_.get());
    server_ = *GrpcServer::Start("127.0.0.1:0", service_.get(), nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Federation::NewStub(channel_);
  }

  void TearDown() override {
    if (coordinator_thread_.joinable()) coordinator_thread_.join();
    server_->Shutdown();
  }

  void StartCoordinator(uint32_t rounds,
                        absl::Duration round_timeout = absl::Seconds(30)) {
    CoordinatorOptions options;
    options.num_rounds = rounds;
    options.min_fit_clients = 1;
    options.min_available_clients = 1;
    options.round_timeout = round_timeout;
    options.wait_for_clients_timeout = absl::Seconds(30);
    coordinator_ = *Coordinator::Create(options, &clients_, &fedavg_, store_.get(), Initial());
    coordinator_thread_ = std::thread([this] { history_ = coordinator_->Run(); });
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }

  grpc::Status Join(const std::string& id, int64_t train_examples = 0,
                    int64_t evaluate_examples = 0) {
    v1::JoinRequest req;
    req.set_client_id(id);
    req.set_num_train_examples(train_examples);
    req.set_num_evaluate_examples(evaluate_examples);
    v1::JoinResponse resp;
    return stub_->Join(Ctx().get(), req, &resp);
  }

  // NextFitTask polls until a fit task arrives.
  v1::Task NextFitTask(const std::string& id) {
    for (int i = 0; i < 100; ++i) {
      v1::PollRequest req;
      req.set_client_id(id);
      v1::Task task;
      grpc::Status s = stub_->Poll(Ctx().get(), req, &task);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (task.has_fit()) return task;
    }
    ADD_FAILURE() << "no fit task arrived";
    return {};
  }

  // Upload sends `chunks` (already cut) with a header for `task_id`.
  grpc::Status Upload(const std::string& id, const std::string& task_id,
                      const std::vector<v1::Chunk>& chunks, int64_t num_examples = 10) {
    v1::SubmitResponse resp;
    auto ctx = Ctx();
    auto writer = stub_->SubmitFit(ctx.get(), &resp);
    for (size_t i = 0; i < chunks.size(); ++i) {
      v1::SubmitFitRequest msg;
      if (i == 0) {
        msg.mutable_header()->set_client_id(id);
        msg.mutable_header()->set_task_id(task_id);
        msg.mutable_header()->set_num_examples(num_examples);
      }
      *msg.mutable_chunk() = chunks[i];
      if (!writer->Write(msg)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static std::vector<v1::Chunk> ChunksOf(const std::string& payload,
                                         size_t chunk_bytes = kChunkBytes) {
    ChunkedPayload p(payload, chunk_bytes);
    std::vector<v1::Chunk> out(p.num_chunks());
    for (uint32_t i = 0; i < p.num_chunks(); ++i) p.FillChunk(i, &out[i]);
    return out;
  }

  static std::string UpdateBytes(at::Tensor w, at::Tensor b) {
    Parameters p;
    p.Add("w", std::move(w));
    p.Add("b", std::move(b));
    return SerializeParameters(p);
  }

  testing::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
  ClientManager clients_;
  FedAvg fedavg_{{}};
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Federation::Stub> stub_;
  std::unique_ptr<Coordinator> coordinator_;
  std::thread coordinator_thread_;
  absl::StatusOr<std::vector<RoundRecord>> history_;
};

TEST_F(GrpcServiceTest, UnknownAndInvalidClientsAreRefused) {
  v1::PollRequest poll;
  poll.set_client_id("stranger");
  v1::Task task;
  grpc::Status s = stub_->Poll(Ctx().get(), poll, &task);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("unknown client 'stranger'"), std::string::npos);

  s = Join("bad id with spaces");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Join(std::string(500, 'x'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  s = Upload("stranger", "fit-r1-1", ChunksOf(UpdateBytes(at::ones({4, 4}), at::ones({4}))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, BadUpdatesAreRefusedAndTheGlobalModelIsUnchanged) {
  ASSERT_TRUE(Join("dev").ok());
  StartCoordinator(/*rounds=*/4);

  // Round 1: a result for a task that does not exist, a truncated stream and
  // a corrupted chunk (transfer errors: the task stays open), then an update
  // of the wrong shape (final: the client fails the round).
  v1::Task t1 = NextFitTask("dev");
  // The task names the exact model bytes, not just a version number.
  EXPECT_EQ(t1.fit().model().version(), 0);
  EXPECT_EQ(t1.fit().model().sha256(), (*store_->Payload(0))->header().sha256());
  grpc::Status s = Upload("dev", "fit-r9-made-up", ChunksOf(UpdateBytes(at::ones({4, 4}), at::ones({4}))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();

  std::vector<v1::Chunk> chunks = ChunksOf(UpdateBytes(at::ones({4, 4}), at::ones({4})), 16);
  std::vector<v1::Chunk> truncated(chunks.begin(), chunks.end() - 1);
  s = Upload("dev", t1.task_id(), truncated);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_NE(s.error_message().find("truncated"), std::string::npos) << s.error_message();

  std::vector<v1::Chunk> corrupted = chunks;
  (*corrupted[2].mutable_data())[0] ^= 0x7f;
  s = Upload("dev", t1.task_id(), corrupted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();

  s = Upload("dev", t1.task_id(), ChunksOf(UpdateBytes(at::ones({4, 5}), at::ones({4}))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("tensor 'w' has shape [4, 5], expected [4, 4]"),
            std::string::npos) << s.error_message();

  // Round 2: wrong dtype.
  v1::Task t2 = NextFitTask("dev");
  s = Upload("dev", t2.task_id(),
             ChunksOf(UpdateBytes(at::ones({4, 4}, at::kDouble), at::ones({4}, at::kDouble))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("dtype"), std::string::npos) << s.error_message();

  // Round 3: NaN and Inf values.
  v1::Task t3 = NextFitTask("dev");
  at::Tensor w = at::ones({4, 4});
  w[0][0] = std::numeric_limits<float>::quiet_NaN();
  w[1][1] = std::numeric_limits<float>::infinity();
  s = Upload("dev", t3.task_id(), ChunksOf(UpdateBytes(w, at::ones({4}))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("non-finite"), std::string::npos) << s.error_message();
  // The task is closed now: a retry of a good update is too late.
  s = Upload("dev", t3.task_id(), ChunksOf(UpdateBytes(at::ones({4, 4}), at::ones({4}))));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Three rounds refused everything: the model is still the initial one.
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(0), at::zeros({4, 4})));
  EXPECT_EQ(coordinator_->global_version(), 0);

  // Round 4: a good update is accepted and is exactly what the model moved by.
  v1::Task t4 = NextFitTask("dev");
  s = Upload("dev", t4.task_id(), ChunksOf(UpdateBytes(at::full({4, 4}, 0.5f), at::ones({4}))));
  EXPECT_TRUE(s.ok()) << s.error_message();
  coordinator_thread_.join();
  ASSERT_TRUE(history_.ok()) << history_.status();
  ASSERT_EQ(history_->size(), 5u);  // round 0 is the initial model
  for (int r = 1; r <= 3; ++r) EXPECT_FALSE((*history_)[r].model_updated) << r;
  EXPECT_TRUE((*history_)[4].model_updated);
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(0), at::full({4, 4}, 0.5f)));
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(1), at::ones({4})));
}

TEST_F(GrpcServiceTest, JoinDeclaresExampleCountsThatCapTheDevicesResults) {
  grpc::Status s = Join("dev", /*train_examples=*/-1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("num_train_examples -1"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(clients_.Find("dev"), nullptr);

  ASSERT_TRUE(Join("dev", 25, 4).ok());
  EXPECT_EQ(clients_.Find("dev")->declared_examples().train, 25);
  EXPECT_EQ(clients_.Find("dev")->declared_examples().evaluate, 4);
  ASSERT_TRUE(Join("dev", 10, 4).ok());  // a rejoin declares again
  EXPECT_EQ(clients_.Find("dev")->declared_examples().train, 10);

  // A result claiming INT64_MAX examples is accepted and counted as 10.
  StartCoordinator(/*rounds=*/1);
  v1::Task t = NextFitTask("dev");
  s = Upload("dev", t.task_id(),
             ChunksOf(UpdateBytes(at::ones({4, 4}), at::ones({4}))),
             std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(s.ok()) << s.error_message();
  coordinator_thread_.join();
  ASSERT_TRUE(history_.ok()) << history_.status();
  ASSERT_EQ(history_->size(), 2u);
  EXPECT_TRUE((*history_)[1].model_updated);
  EXPECT_EQ((*history_)[1].train_examples, 10);
}

TEST_F(GrpcServiceTest, DownloadStreamsTheStoredModelInChunks) {
  ASSERT_TRUE(Join("dev").ok());
  Parameters big;
  big.Add("w", at::randn({1024, 1024}));  // 4 MiB: several chunks
  ASSERT_TRUE(store_->Save(0, big, {}).ok());
  v1::DownloadModelRequest req;
  req.set_client_id("dev");
  req.set_version(kLatestVersion);
  auto ctx = Ctx();
  auto reader = stub_->DownloadModel(ctx.get(), req);
  ChunkAssembler assembler(64 << 20);
  v1::Chunk chunk;
  while (reader->Read(&chunk)) ASSERT_TRUE(assembler.Add(chunk).ok());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GE(assembler.chunks_received(), 4u);
  absl::StatusOr<std::string> payload = assembler.Finish();
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_TRUE(at::equal(ParseParameters(*payload)->tensor(0), big.tensor(0)));

  req.set_version(42);
  auto ctx2 = Ctx();
  auto missing = stub_->DownloadModel(ctx2.get(), req);
  while (missing->Read(&chunk)) {
  }
  EXPECT_EQ(missing->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

// Two servers on one port would split the fleet between two runs; the
// second is refused, saying the address is in use.
TEST_F(GrpcServiceTest, SecondServerOnAPortInUseIsRefused) {
  const std::string address = absl::StrCat("127.0.0.1:", server_->port());
  FederationService other(
      testing::PlaintextServiceOptions(absl::Milliseconds(100), "other"),
      &clients_, store_.get());
  absl::StatusOr<std::unique_ptr<GrpcServer>> second =
      GrpcServer::Start(address, &other, nullptr);
  ASSERT_FALSE(second.ok()) << "a second server started on " << address;
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("address in use"));
  // The first still serves.
  EXPECT_TRUE(Join("dev").ok());
}

TEST_F(GrpcServiceTest, ListenAddressIsValidatedBeforeGrpcSeesIt) {
  FederationService other(
      testing::PlaintextServiceOptions(absl::Milliseconds(100), "other"),
      &clients_, store_.get());
  // 65536 + the port would otherwise wrap to the port.
  for (const std::string bad :
       {absl::StrCat("127.0.0.1:", 65536 + server_->port()),
        std::string("127.0.0.1:"), std::string("127.0.0.1:4294967297")}) {
    absl::StatusOr<std::unique_ptr<GrpcServer>> s =
        GrpcServer::Start(bad, &other, nullptr);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument)
        << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("listen address"));
  }
}

// A 3 MB task ID used to be echoed into the refusal and into the log line
// of every call: 100 calls wrote 300 MB of log.
TEST_F(GrpcServiceTest, HugeStringFieldsAreRefusedWithBoundedErrorsAndLog) {
  ASSERT_TRUE(Join("dev").ok());
  const std::string huge(3 << 20, 'x');
  testing::LogCapture log;
  std::vector<grpc::Status> refusals;
  for (int i = 0; i < 100; ++i) {
    v1::EvaluateResult eval;
    eval.set_client_id("dev");
    eval.set_task_id(huge);
    v1::SubmitResponse resp;
    refusals.push_back(stub_->SubmitEvaluate(Ctx().get(), eval, &resp));
  }
  refusals.push_back(Upload(
      "dev", huge, ChunksOf(UpdateBytes(at::ones({4, 4}), at::ones({4})))));
  {
    v1::DownloadAuxRequest aux;
    aux.set_client_id("dev");
    aux.set_task_id(huge);
    auto ctx = Ctx();
    auto reader = stub_->DownloadAux(ctx.get(), aux);
    v1::Chunk chunk;
    while (reader->Read(&chunk)) {
    }
    refusals.push_back(reader->Finish());
  }
  {
    v1::JoinRequest join;
    join.set_client_id("dev");
    join.set_device(huge);
    v1::JoinResponse resp;
    refusals.push_back(stub_->Join(Ctx().get(), join, &resp));
  }
  {
    // Nested: a metric's name inside the fit header.
    v1::SubmitResponse resp;
    auto ctx = Ctx();
    auto writer = stub_->SubmitFit(ctx.get(), &resp);
    v1::SubmitFitRequest msg;
    msg.mutable_header()->set_client_id("dev");
    msg.mutable_header()->set_task_id("fit-r1-x");
    (*msg.mutable_header()->mutable_metrics())[huge].set_double_value(1);
    writer->Write(msg);
    writer->WritesDone();
    refusals.push_back(writer->Finish());
  }
  for (const grpc::Status& s : refusals) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message().substr(0, 200);
    EXPECT_LT(s.error_message().size(), 200u)
        << s.error_message().substr(0, 200);
    EXPECT_THAT(s.error_message(), HasSubstr("limit is 1024"));
  }
  EXPECT_THAT(refusals[0].error_message(),
              HasSubstr("'task_id' is 3145728 bytes"));
  EXPECT_THAT(refusals.back().error_message(), HasSubstr("header.metrics.key"));
  // 104 refused calls: a few lines each at most, none carrying the value.
  const std::string text = log.Text();
  EXPECT_LT(text.size(), size_t{64} << 10);
  EXPECT_EQ(text.find(std::string(2000, 'x')), std::string::npos);
  // The client is unharmed.
  EXPECT_TRUE(Join("dev").ok());
}

// A revoked device's open task used to stay open until the round's deadline.
TEST_F(GrpcServiceTest, RevokedClientsOpenTaskFailsAtOnce) {
  const std::string revoked = dir_.File("revoked.txt");
  ASSERT_TRUE(WriteFileAtomically(revoked, RevocationTrailer(0)).ok());
  FederationServiceOptions options =
      testing::PlaintextServiceOptions(absl::Milliseconds(500), "test-run");
  options.access.revoked_file = revoked;
  Serve(std::move(options));
  ASSERT_TRUE(Join("dev").ok());
  const absl::Duration deadline = absl::Seconds(60);
  StartCoordinator(/*rounds=*/1, deadline);
  v1::Task task = NextFitTask("dev");
  ASSERT_TRUE(task.has_fit());
  ASSERT_TRUE(
      WriteFileAtomically(revoked, absl::StrCat("dev\n", RevocationTrailer(1)))
          .ok());
  // The device calls again (or any device does): the list is re-read within
  // a second and the device is refused and dropped.
  grpc::Status polled;
  for (int i = 0; i < 50 && polled.ok(); ++i) {
    v1::PollRequest req;
    req.set_client_id("dev");
    v1::Task next;
    polled = stub_->Poll(Ctx().get(), req, &next);
    if (polled.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(polled.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  coordinator_thread_.join();
  ASSERT_TRUE(history_.ok()) << history_.status();
  ASSERT_EQ(history_->size(), 2u);
  const RoundRecord& round = (*history_)[1];
  ASSERT_EQ(round.failures.size(), 1u);
  EXPECT_EQ(round.failures[0].client_id, "dev");
  EXPECT_THAT(std::string(round.failures[0].status.message()),
              HasSubstr("revoked"));
  EXPECT_LT(round.seconds, absl::ToDoubleSeconds(deadline) / 2)
      << "the round waited for the revoked client's deadline";
  EXPECT_EQ(clients_.Find("dev"), nullptr);
}

}  // namespace
}  // namespace shoal
