// The server's gRPC face under bad input: a real FederationService on
// 127.0.0.1 with a real Coordinator, driven by a hand-written client that
// sends what a buggy or hostile device might.
#include "server/grpc_service.h"

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>

#include <limits>
#include <thread>

#include "common/chunking.h"
#include "common/metrics.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "strategies/fedavg.h"
#include "tests/service_testing.h"
#include "tests/testing.h"

namespace shoal {
namespace {

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
    service_ = std::make_unique<FederationService>(
        testing::PlaintextServiceOptions(absl::Milliseconds(500), "test-run"), &clients_, store_.get());
    server_ = *GrpcServer::Start("127.0.0.1:0", service_.get(), nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Federation::NewStub(channel_);
  }

  void TearDown() override {
    if (coordinator_thread_.joinable()) coordinator_thread_.join();
    server_->Shutdown();
  }

  void StartCoordinator(uint32_t rounds) {
    CoordinatorOptions options;
    options.num_rounds = rounds;
    options.min_fit_clients = 1;
    options.min_available_clients = 1;
    options.round_timeout = absl::Seconds(30);
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

}  // namespace
}  // namespace shoal
