// Secure aggregation over the real wire: a FederationService on 127.0.0.1,
// three client::Agents in threads training a small model on generated data,
// and one SecAgg+ session driven by hand from the test through the agents'
// GrpcClientProxies, as a round driver would. The decoded aggregate is
// checked against the same clients' plaintext updates, trained again here.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/agent.h"
#include "client/local_client.h"
#include "common/chunking.h"
#include "common/parameters.h"
#include "gtest/gtest.h"
#include "secagg/crypto.h"
#include "secagg/graph.h"
#include "secagg/server.h"
#include "secagg/update_codec.h"
#include "secagg/wire.h"
#include "server/client_manager.h"
#include "server/grpc_client_proxy.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "tests/service_testing.h"
#include "tests/testing.h"

namespace shoal {
namespace {

// Plaintext service options: these tests exercise the service's logic;
// tls_test covers transport security and authentication.
constexpr uint32_t kClients = 3;
constexpr uint32_t kRound = 1;
// Different sizes, so the mean is weighted; all within max_weight, so the
// weights are the sizes themselves.
constexpr int64_t kExamples[kClients] = {30, 40, 50};
constexpr int64_t kMaxWeight = 50;
constexpr absl::Duration kStageTimeout = absl::Seconds(60);

client::Dataset Data(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return client::Dataset{at::randn({n, 1, 28, 28}, gen),
                         at::randint(0, 10, {n}, gen, at::kLong)};
}

// MakeClient builds client i's LocalClient; called twice per client (the
// agent's and the test's reference), it trains the same update both times.
std::unique_ptr<client::LocalClient> MakeClient(uint32_t i) {
  client::TrainerOptions trainer;
  trainer.seed = 100 + i;
  return std::make_unique<client::LocalClient>(
      *client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), /*seed=*/i),
      *client::Trainer::Create(trainer), Data(kExamples[i], 7 + i), client::Dataset{});
}

v1::FitConfig Config() {
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(10);
  config.set_learning_rate(0.05);
  return config;
}

std::string ClientId(uint32_t i) { return absl::StrCat("device-", i); }

// Session is one SecAgg+ session and the answers as they arrive. The
// proxies' handlers run on gRPC threads (inside SubmitSecAgg / SubmitFit),
// so every touch of the SecAggServer, which is not thread-safe, is under mu.
struct Session {
  absl::Mutex mu;
  std::unique_ptr<secagg::SecAggServer> server ABSL_GUARDED_BY(mu);
  // What Receive said to each client in the current stage.
  std::map<uint32_t, absl::Status> verdicts ABSL_GUARDED_BY(mu);

  // Deliver hands client `index`'s answer to the server and returns its
  // verdict (which the transport passes back to the device).
  absl::Status Deliver(uint32_t index, absl::StatusOr<v1::SecAggClientMessage> answer) {
    absl::MutexLock lock(&mu);
    absl::Status verdict = answer.ok() ? server->Receive(index, *answer) : answer.status();
    verdicts[index] = verdict;
    return verdict;
  }

  // AwaitAnswers waits until `n` clients answered this stage.
  bool AwaitAnswers(size_t n) {
    absl::MutexLock lock(&mu);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return verdicts.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&done), kStageTimeout);
  }
};

class SecAggTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    initial_ = std::make_shared<const Parameters>(
        (*client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), /*seed=*/42))
            ->GetParameters()
            .Clone());
    store_ = *ModelStore::Open(dir_.File("server"), "logreg-1x28x28-10");
    ASSERT_TRUE(store_->Save(0, *initial_, {}).ok());
    // A short long-poll, so the agents see each stage's task at once.
    service_ = std::make_unique<FederationService>(
        testing::PlaintextServiceOptions(absl::Milliseconds(200), "secagg-test"), &clients_,
        store_.get());
    const int port = testing::PickUnusedPort();
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
    auto server = GrpcServer::Start(address_, service_.get(), nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Federation::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));

    for (uint32_t i = 0; i < kClients; ++i) {
      locals_.push_back(MakeClient(i));
      client::AgentOptions options;
      options.server_address = address_;
      options.client_id = ClientId(i);
      options.state_dir = dir_.File(ClientId(i));
      options.model_code.spec = "logreg-1x28x28-10";
      options.give_up_after = absl::Seconds(30);
      options.seed = i;
      agents_.push_back(std::make_unique<client::Agent>(options, locals_.back().get()));
    }
    agent_status_.resize(kClients);
    for (uint32_t i = 0; i < kClients; ++i) {
      threads_.emplace_back([this, i] { agent_status_[i] = agents_[i]->Run(); });
    }
    ASSERT_TRUE(clients_.WaitForLive(kClients, absl::Seconds(30)));
    for (uint32_t i = 0; i < kClients; ++i) {
      proxies_.push_back(std::dynamic_pointer_cast<GrpcClientProxy>(clients_.Find(ClientId(i))));
      ASSERT_NE(proxies_.back(), nullptr);
    }
  }

  void TearDown() override {
    // The run is over: every agent fetches the final model, leaves and
    // returns OK (Stop() is the fallback if an assertion left one waiting).
    clients_.ShutdownAll("test over", 0);
    for (uint32_t i = 0; i < threads_.size(); ++i) {
      const absl::Time until = absl::Now() + absl::Seconds(20);
      while (clients_.Find(ClientId(i)) != nullptr && absl::Now() < until) {
        absl::SleepFor(absl::Milliseconds(20));
      }
      agents_[i]->Stop();
      threads_[i].join();
      EXPECT_TRUE(agent_status_[i].ok()) << ClientId(i) << ": " << agent_status_[i];
    }
    if (server_ != nullptr) server_->Shutdown();
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }

  // Upload sends a serialized UpdateProto as a fit result, as an agent would.
  grpc::Status Upload(const std::string& id, const std::string& task_id,
                      const v1::UpdateProto& update, int64_t num_examples) {
    const ChunkedPayload payload(update.SerializeAsString());
    v1::SubmitResponse resp;
    auto ctx = Ctx();
    auto writer = stub_->SubmitFit(ctx.get(), &resp);
    for (uint32_t i = 0; i < payload.num_chunks(); ++i) {
      v1::SubmitFitRequest msg;
      if (i == 0) {
        msg.mutable_header()->set_client_id(id);
        msg.mutable_header()->set_task_id(task_id);
        msg.mutable_header()->set_num_examples(num_examples);
      }
      payload.FillChunk(i, msg.mutable_chunk());
      if (!writer->Write(msg)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::Task PollOnce(const std::string& id) {
    v1::PollRequest req;
    req.set_client_id(id);
    v1::Task task;
    grpc::Status s = stub_->Poll(Ctx().get(), req, &task);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return task;
  }

  testing::TempDir dir_;
  std::shared_ptr<const Parameters> initial_;
  std::unique_ptr<ModelStore> store_;
  ClientManager clients_;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::string address_;
  std::unique_ptr<v1::Federation::Stub> stub_;
  std::vector<std::unique_ptr<client::LocalClient>> locals_;
  std::vector<std::unique_ptr<client::Agent>> agents_;
  std::vector<absl::Status> agent_status_;
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<GrpcClientProxy>> proxies_;
};

TEST_F(SecAggTransportTest, AgentsCompleteASessionAndTheSumIsTheirWeightedMean) {
  secagg::UpdateEncoding encoding;
  encoding.max_weight = kMaxWeight;
  ASSERT_TRUE(encoding.Validate(kClients).ok());
  secagg::SecAggServerConfig config;
  config.session_id = *secagg::NewSessionId();
  config.neighbours =
      *secagg::MakeNeighbourGraph(kClients, kClients - 1, *secagg::RandomBytes(secagg::kKeySize));
  config.threshold = 2;
  config.vector_length = secagg::VectorLength(*initial_);
  config.modulus = encoding.values.modulus;
  config.encoding = encoding.ToProto();
  Session session;
  {
    absl::MutexLock lock(&session.mu);
    auto server = secagg::SecAggServer::Create(config);
    ASSERT_TRUE(server.ok()) << server.status();
    session.server = *std::move(server);
  }
  // Client index u (1-based) is proxies_[u - 1].
  const absl::Time deadline = absl::Now() + kStageTimeout;
  for (int stage = 0;; ++stage) {
    std::vector<uint32_t> expected;
    {
      absl::MutexLock lock(&session.mu);
      if (session.server->finished()) break;
      expected = session.server->Expected();
      session.verdicts.clear();
    }
    ASSERT_EQ(expected.size(), kClients) << "stage " << stage;
    for (uint32_t u : expected) {
      absl::StatusOr<v1::SecAggServerMessage> message;
      {
        absl::MutexLock lock(&session.mu);
        message = session.server->MessageFor(u);
      }
      ASSERT_TRUE(message.ok()) << message.status();
      GrpcClientProxy& proxy = *proxies_[u - 1];
      if (message->has_shares()) {
        // The masked-input stage rides on the fit task.
        FitIns ins;
        ins.round = kRound;
        ins.model_version = 0;
        ins.parameters = initial_;
        ins.config = Config();
        ins.secagg = std::make_shared<const v1::SecAggServerMessage>(*message);
        proxy.Fit(ins, deadline, [&session, u](absl::StatusOr<FitRes> res) {
          if (!res.ok()) return session.Deliver(u, res.status());
          // Nothing but the masked input travels.
          EXPECT_TRUE(res->secagg.has_value());
          EXPECT_TRUE(res->update.empty());
          EXPECT_TRUE(res->aux.empty());
          EXPECT_EQ(res->num_examples, 0);
          EXPECT_TRUE(res->metrics.empty());
          if (!res->secagg) return session.Deliver(u, absl::InternalError("no masked input"));
          return session.Deliver(u, *std::move(res->secagg));
        });
      } else {
        proxy.SecAgg(*message, kRound, deadline,
                     [&session, u](absl::StatusOr<v1::SecAggClientMessage> answer) {
                       return session.Deliver(u, std::move(answer));
                     });
      }
    }
    if (stage == 1) {
      // An answer to a task that is not open is refused and leaves the
      // session (and the open task) as they were.
      v1::SecAggSubmission wrong;
      wrong.set_client_id(ClientId(0));
      wrong.set_task_id("secagg-r1-made-up");
      v1::SubmitResponse resp;
      grpc::Status s = stub_->SubmitSecAgg(Ctx().get(), wrong, &resp);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
      EXPECT_FALSE(resp.accepted());
      wrong.set_client_id("stranger");
      s = stub_->SubmitSecAgg(Ctx().get(), wrong, &resp);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
    }
    ASSERT_TRUE(session.AwaitAnswers(kClients)) << "stage " << stage << " timed out";
    absl::MutexLock lock(&session.mu);
    for (const auto& [u, verdict] : session.verdicts) {
      EXPECT_TRUE(verdict.ok()) << "stage " << stage << ", client " << u << ": " << verdict;
    }
    absl::Status advanced = session.server->Advance();
    ASSERT_TRUE(advanced.ok()) << "stage " << stage << ": " << advanced;
  }

  absl::MutexLock lock(&session.mu);
  ASSERT_EQ(session.server->stage(), secagg::ServerStage::kDone);
  EXPECT_EQ(session.server->summed_clients(), (std::vector<uint32_t>{1, 2, 3}));
  absl::StatusOr<secagg::DecodedAggregate> decoded = secagg::DecodeAggregate(
      session.server->sum(), kClients, *initial_, encoding);
  ASSERT_TRUE(decoded.ok()) << decoded.status();

  // The same clients in the clear: same data, shuffle seed and global model.
  std::vector<FitRes> plain;
  int64_t total_weight = 0;
  for (uint32_t i = 0; i < kClients; ++i) {
    absl::StatusOr<FitRes> res = MakeClient(i)->Fit(*initial_, Config(), kRound);
    ASSERT_TRUE(res.ok()) << res.status();
    ASSERT_EQ(res->num_examples, kExamples[i]);
    total_weight += std::min(res->num_examples, kMaxWeight);
    plain.push_back(*std::move(res));
  }
  EXPECT_EQ(decoded->total_weight, total_weight);
  // secagg/update_codec.h: each element is within n * step * W / sum(w) of
  // the weighted mean of the clipped, scaled updates (nothing is clipped
  // here, checked below), plus float32 rounding of the scaled values.
  const double bound = kClients * encoding.values.Step() * kMaxWeight /
                           static_cast<double>(total_weight) + 1e-6;
  ASSERT_EQ(decoded->mean_update.size(), initial_->size());
  double weighting_matters = 0;
  for (size_t t = 0; t < initial_->size(); ++t) {
    at::Tensor mean = at::zeros_like(initial_->tensor(t), at::kDouble);
    at::Tensor unweighted = at::zeros_like(mean);
    for (uint32_t i = 0; i < kClients; ++i) {
      const at::Tensor u = plain[i].update.tensor(t).to(at::kDouble);
      ASSERT_LT((u * kExamples[i] / kMaxWeight).abs().max().item<double>(),
                encoding.values.clip) << "clipped";
      mean += u * kExamples[i];
      unweighted += u / static_cast<double>(kClients);
    }
    mean /= static_cast<double>(total_weight);
    const at::Tensor got = decoded->mean_update.tensor(t).to(at::kDouble);
    EXPECT_TRUE(at::isfinite(got).all().item<bool>());
    const double error = (got - mean).abs().max().item<double>();
    EXPECT_LT(error, bound) << initial_->name(t);
    weighting_matters =
        std::max(weighting_matters, (mean - unweighted).abs().max().item<double>());
  }
  // The check can tell a weighted mean from a plain one.
  EXPECT_GT(weighting_matters, 10 * bound);
}

TEST_F(SecAggTransportTest, AMaskedUpdateWithAnythingInTheClearIsRefused) {
  // (and a plain update where a masked one is due)
  // A hand-written device, so the test can send what a buggy one might.
  v1::JoinRequest join;
  join.set_client_id("raw");
  v1::JoinResponse joined;
  ASSERT_TRUE(stub_->Join(Ctx().get(), join, &joined).ok());
  std::shared_ptr<GrpcClientProxy> proxy =
      std::dynamic_pointer_cast<GrpcClientProxy>(clients_.Find("raw"));
  ASSERT_NE(proxy, nullptr);

  v1::SecAggServerMessage shares;
  shares.set_session_id("0123456789abcdef0123456789abcdef");
  shares.mutable_shares();
  v1::UpdateProto masked_only;
  masked_only.mutable_secagg()->set_session_id(shares.session_id());
  masked_only.mutable_secagg()->set_client_index(1);
  masked_only.mutable_secagg()->mutable_masked_input()->set_packed(std::string(40, '\x01'));
  v1::UpdateProto both = masked_only;
  v1::UpdateProto plain_only;  // what a device unaware of secure aggregation sends
  for (size_t i = 0; i < initial_->size(); ++i) {
    TensorToProto(initial_->name(i), at::zeros_like(initial_->tensor(i)), both.add_tensors());
    TensorToProto(initial_->name(i), at::zeros_like(initial_->tensor(i)),
                  plain_only.add_tensors());
  }

  struct Case {
    const char* what;
    const v1::UpdateProto* update;
    int64_t num_examples;
    const char* message;
  };
  const Case cases[] = {
      {"tensors beside the masked input", &both, 0, "in the clear"},
      {"num_examples in the clear", &masked_only, 30, "num_examples 0"},
      {"a plain update in a secure round", &plain_only, 30, "send the masked input"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    absl::Mutex mu;
    std::optional<absl::Status> delivered;
    FitIns ins;
    ins.round = kRound;
    ins.parameters = initial_;
    ins.config = Config();
    ins.secagg = std::make_shared<const v1::SecAggServerMessage>(shares);
    proxy->Fit(ins, absl::Now() + kStageTimeout, [&](absl::StatusOr<FitRes> res) {
      absl::MutexLock lock(&mu);
      delivered = res.status();
      return absl::OkStatus();
    });
    v1::Task task = PollOnce("raw");
    ASSERT_TRUE(task.has_fit());
    ASSERT_TRUE(task.fit().has_secagg());
    EXPECT_EQ(task.fit().secagg().session_id(), shares.session_id());

    grpc::Status s = Upload("raw", task.task_id(), *c.update, c.num_examples);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find(c.message), std::string::npos) << s.error_message();
    // Refused for good: the round hears of it at once.
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(delivered.has_value());
    EXPECT_EQ(delivered->code(), absl::StatusCode::kInvalidArgument) << *delivered;
  }

  // A well-formed masked update is passed on as it is.
  absl::Mutex mu;
  std::optional<absl::StatusOr<FitRes>> delivered;
  FitIns ins;
  ins.round = kRound;
  ins.parameters = initial_;
  ins.secagg = std::make_shared<const v1::SecAggServerMessage>(shares);
  proxy->Fit(ins, absl::Now() + kStageTimeout, [&](absl::StatusOr<FitRes> res) {
    absl::MutexLock lock(&mu);
    delivered = std::move(res);
    return absl::OkStatus();
  });
  v1::Task task = PollOnce("raw");
  grpc::Status s = Upload("raw", task.task_id(), masked_only, 0);
  EXPECT_TRUE(s.ok()) << s.error_message();
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(delivered.has_value() && delivered->ok());
  ASSERT_TRUE((*delivered)->secagg.has_value());
  EXPECT_EQ((*delivered)->secagg->SerializeAsString(),
            masked_only.secagg().SerializeAsString());
  EXPECT_TRUE((*delivered)->update.empty());
}

}  // namespace
}  // namespace shoal
