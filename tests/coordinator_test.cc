#include "server/coordinator.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/files.h"
#include "gtest/gtest.h"
#include "server/checkpoint.h"
#include "server/client_manager.h"
#include "strategies/fedavg.h"
#include "strategies/fedmedian.h"
#include "strategies/registry.h"
#include "tests/fake_client_proxy.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using testing::FakeClientProxy;

Parameters Initial() {
  Parameters p;
  p.Add("w", at::zeros({4}));
  p.Add("b", at::zeros({1}));
  return p;
}

FakeClientProxy::Behaviour Answer(float value, int64_t n) {
  return [value, n](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    FitRes res;
    for (size_t i = 0; i < ins.parameters->size(); ++i) {
      res.update.Add(ins.parameters->name(i),
                     at::full_like(ins.parameters->tensor(i), value));
    }
    res.num_examples = n;
    res.metrics["train_loss"] = static_cast<double>(value);
    return res;
  };
}

FakeClientProxy::Behaviour Silent() {
  return [](const FitIns&) -> std::optional<absl::StatusOr<FitRes>> { return std::nullopt; };
}

// SecureStages lets a test wait until a secure-aggregation stage has
// closed: the next wait on the clock is then the next stage's.
class SecureStages : public RoundObserver {
 public:
  void OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                     size_t asked) override {
    absl::MutexLock lock(&mu_);
    closed_.insert(stage);
  }
  void OnRoundEnd(const RoundRecord& record) override {}
  void WaitUntilClosed(const std::string& stage) {
    absl::MutexLock lock(&mu_);
    auto closed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_.count(stage) > 0; };
    mu_.Await(absl::Condition(&closed));
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> closed_ ABSL_GUARDED_BY(mu_);
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *ModelStore::Open(dir_.path() + "/models", "test");
    options_.num_rounds = 1;
    options_.min_fit_clients = 2;
    options_.min_available_clients = 2;
    options_.round_timeout = absl::Seconds(20);
    options_.wait_for_clients_timeout = absl::Seconds(5);
  }

  std::shared_ptr<FakeClientProxy> Add(const std::string& id, FakeClientProxy::Behaviour b,
                                       absl::Duration delay = absl::ZeroDuration()) {
    auto proxy = std::make_shared<FakeClientProxy>(id, std::move(b), delay, &clock_);
    clients_.Register(proxy);
    return proxy;
  }

  absl::StatusOr<std::vector<RoundRecord>> Run(Parameters initial = Initial()) {
    absl::StatusOr<std::unique_ptr<Coordinator>> c =
        Coordinator::Create(options_, &clients_, &fedavg_, store_.get(), std::move(initial));
    if (!c.ok()) return c.status();
    coordinator_ = *std::move(c);
    for (RoundObserver* o : observers_) coordinator_->AddObserver(o);
    return coordinator_->Run();
  }

  // RunOnFakeClock runs the Coordinator on clock_ in a thread of its own,
  // and `drive` meanwhile, which moves the clock: a deadline passes when the
  // test says so, and no test sleeps.
  absl::StatusOr<std::vector<RoundRecord>> RunOnFakeClock(const std::function<void()>& drive) {
    options_.clock = &clock_;
    absl::StatusOr<std::vector<RoundRecord>> history = absl::UnknownError("did not run");
    std::thread run([&] { history = Run(); });
    drive();
    run.join();
    return history;
  }
  // PassRoundDeadline waits until the round waits for its deadline with
  // the answers of `prompt` in, then moves the clock past the deadline.
  void PassRoundDeadline(const std::vector<std::shared_ptr<FakeClientProxy>>& prompt) {
    clock_.BlockUntilWaiters(1);
    for (const auto& p : prompt) p->verdicts();  // their answers are in
    clock_.Advance(options_.round_timeout);
  }

  testing::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
  // Liveness and waits for clients follow clock_; a client stays live
  // however far a test moves it, until it misses a deadline.
  FakeClock clock_;
  ClientManager clients_{ClientManagerOptions{absl::Hours(24 * 365), &clock_}};
  FedAvg fedavg_{{}};
  CoordinatorOptions options_;
  std::vector<RoundObserver*> observers_;  // added to the Coordinator Run makes
  std::unique_ptr<Coordinator> coordinator_;
};

// A device that declines (its may-train check said not now) is neither
// answered nor failed: the round files it under `declined`, with its
// reason, and aggregates the others; when too few are left, the note says
// how many declined.
TEST_F(CoordinatorTest, ADeclineIsFiledApartFromFailuresAndTheRoundGoesOn) {
  options_.min_fit_clients = 1;
  options_.min_available_clients = 3;
  options_.num_rounds = 2;
  Add("a", Answer(1, 1));
  Add("b", [](const FitIns&) { return absl::StatusOr<FitRes>(DeclinedError("on battery")); });
  Add("c", [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    if (ins.round == 1) return absl::StatusOr<FitRes>(absl::InternalError("disk full"));
    return absl::StatusOr<FitRes>(DeclinedError("metered link"));
  });
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 3u);
  const RoundRecord& first = (*history)[1];
  EXPECT_EQ(first.answered, 1u);
  ASSERT_EQ(first.failures.size(), 1u);
  EXPECT_EQ(first.failures[0].client_id, "c");
  ASSERT_EQ(first.declined.size(), 1u);
  EXPECT_EQ(first.declined[0].client_id, "b");
  EXPECT_EQ(DeclinedReason(first.declined[0].status), "on battery");
  EXPECT_TRUE(first.model_updated);
  const RoundRecord& second = (*history)[2];
  EXPECT_TRUE(second.failures.empty());
  EXPECT_EQ(second.declined.size(), 2u);
}

TEST_F(CoordinatorTest, TooFewLeftAfterDeclinesKeepsTheModelAndSaysHowManyDeclined) {
  options_.min_fit_clients = 2;
  options_.min_available_clients = 3;
  Add("a", Answer(1, 1));
  for (const char* id : {"b", "c"}) {
    Add(id, [](const FitIns&) { return absl::StatusOr<FitRes>(DeclinedError("charging")); });
  }
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_FALSE((*history)[1].model_updated);
  EXPECT_NE((*history)[1].note.find("only 1 of 3 sampled clients returned a valid result "
                                        "(2 declined)"),
            std::string::npos)
      << (*history)[1].note;
}

TEST_F(CoordinatorTest, AggregatesEveryAnswerAndStoresTheNewVersion) {
  Add("a", Answer(1, 1));
  Add("b", Answer(3, 3));  // weighted mean update = (1 + 9) / 4 = 2.5
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 2u);  // round 0 is the initial model
  EXPECT_EQ((*history)[0].round, 0u);
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.sampled, 2u);
  EXPECT_EQ(r.answered, 2u);
  EXPECT_TRUE(r.model_updated);
  EXPECT_EQ(r.model_version, 1);
  EXPECT_DOUBLE_EQ(r.train_loss, 2.5);
  EXPECT_TRUE(at::allclose(coordinator_->global()->tensor(0), at::full({4}, 2.5f)));
  ASSERT_TRUE(store_->Latest().has_value());
  EXPECT_EQ(store_->Latest()->version, 1);
}

TEST_F(CoordinatorTest, SilentClientDoesNotStallTheRoundPastItsDeadline) {
  options_.round_timeout = absl::Seconds(500);
  auto a = Add("a", Answer(1, 1));
  auto b = Add("b", Answer(1, 1));
  Add("silent", Silent());
  absl::StatusOr<std::vector<RoundRecord>> history = RunOnFakeClock([&] {
    PassRoundDeadline({a, b});
  });
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.answered, 2u);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].client_id, "silent");
  EXPECT_EQ(r.failures[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(r.model_updated);
  EXPECT_EQ(r.seconds, 500) << "the round ended at its deadline on the round's clock";
}

// A client that let the round's deadline pass (a dead device) is not asked
// in the next round, which then closes without waiting for it.
TEST_F(CoordinatorTest, ClientThatMissedTheDeadlineIsNotAskedNextRound) {
  options_.num_rounds = 2;
  options_.round_timeout = absl::Seconds(500);
  auto a = Add("a", Answer(1, 1));
  auto b = Add("b", Answer(1, 1));
  Add("silent", Silent());
  // Only round 1 waits: were the silent client asked again, round 2 would
  // wait for a deadline nobody passes, and the test would not end.
  absl::StatusOr<std::vector<RoundRecord>> history = RunOnFakeClock([&] {
    PassRoundDeadline({a, b});
  });
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[1].sampled, 3u);
  EXPECT_EQ((*history)[1].failures.size(), 1u);
  const RoundRecord& r2 = (*history)[2];
  EXPECT_EQ(r2.sampled, 2u);
  EXPECT_EQ(r2.answered, 2u);
  EXPECT_TRUE(r2.failures.empty());
  EXPECT_EQ(r2.seconds, 0);
}

TEST_F(CoordinatorTest, TooFewResultsLeaveTheModelUnchangedAndSaySo) {
  options_.round_timeout = absl::Seconds(300);
  auto a = Add("a", Answer(5, 1));
  Add("silent", Silent());
  absl::StatusOr<std::vector<RoundRecord>> history =
      RunOnFakeClock([&] { PassRoundDeadline({a}); });
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_FALSE(r.model_updated);
  EXPECT_EQ(r.model_version, 0);
  EXPECT_NE(r.note.find("only 1 of 2"), std::string::npos) << r.note;
  EXPECT_NE(r.note.find("min_fit_clients = 2"), std::string::npos) << r.note;
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(0), at::zeros({4})));
}

TEST_F(CoordinatorTest, BadUpdatesAreRefusedWithClearErrorsAndDoNotTouchTheModel) {
  options_.min_fit_clients = 1;
  options_.min_available_clients = 1;
  auto wrong_shape = Add("shape", [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    FitRes res;
    res.update.Add("w", at::ones({5}));
    res.update.Add("b", at::ones({1}));
    res.num_examples = 1;
    return res;
  });
  auto wrong_dtype = Add("dtype", [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    FitRes res;
    res.update.Add("w", at::ones({4}, at::kDouble));
    res.update.Add("b", at::ones({1}, at::kDouble));
    res.num_examples = 1;
    return res;
  });
  auto nan = Add("nan", [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    FitRes res;
    res.update.Add("w", at::full({4}, std::numeric_limits<float>::quiet_NaN()));
    res.update.Add("b", at::ones({1}));
    res.num_examples = 1;
    return res;
  });
  auto inf = Add("inf", [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    FitRes res;
    res.update.Add("w", at::ones({4}));
    res.update.Add("b", at::full({1}, std::numeric_limits<float>::infinity()));
    res.num_examples = 1;
    return res;
  });
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.answered, 0u);
  EXPECT_EQ(r.failures.size(), 4u);
  EXPECT_FALSE(r.model_updated);
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(0), at::zeros({4})));
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(1), at::zeros({1})));

  auto verdict = [](const std::shared_ptr<FakeClientProxy>& p) {
    std::vector<absl::Status> v = p->verdicts();
    return v.empty() ? std::string("no verdict") : std::string(v[0].message());
  };
  EXPECT_NE(verdict(wrong_shape).find("shape [5]"), std::string::npos) << verdict(wrong_shape);
  EXPECT_NE(verdict(wrong_dtype).find("dtype"), std::string::npos) << verdict(wrong_dtype);
  EXPECT_NE(verdict(nan).find("non-finite"), std::string::npos) << verdict(nan);
  EXPECT_NE(verdict(inf).find("non-finite"), std::string::npos) << verdict(inf);
}

TEST_F(CoordinatorTest, LateResultIsRefusedAfterTheRoundCloses) {
  options_.round_timeout = absl::Seconds(200);
  options_.min_fit_clients = 1;
  options_.min_available_clients = 1;
  auto fast = Add("fast", Answer(1, 1));
  auto late = Add("late", Answer(100, 1), absl::Seconds(800));
  absl::StatusOr<std::vector<RoundRecord>> history = RunOnFakeClock([&] {
    clock_.BlockUntilWaiters(2);  // the round, and the late client's delay
    fast->verdicts();
    clock_.Advance(options_.round_timeout);  // the round closes...
  });
  clock_.Advance(absl::Seconds(600));  // ...then the late client answers
  ASSERT_TRUE(history.ok()) << history.status();
  std::vector<absl::Status> verdicts = late->verdicts();
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(verdicts[0].message().find("closed"), std::string::npos);
  // Only the fast client's update (1.0) is in the model.
  EXPECT_TRUE(at::allclose(coordinator_->global()->tensor(0), at::ones({4})));
}

TEST_F(CoordinatorTest, RunEndsByTellingClientsTheFinalVersion) {
  options_.num_rounds = 3;
  auto a = Add("a", Answer(1, 1));
  Add("b", Answer(1, 1));
  ASSERT_TRUE(Run().ok());
  EXPECT_EQ(a->final_version(), 3);
  EXPECT_TRUE(at::allclose(coordinator_->global()->tensor(0), at::full({4}, 3.0f)));
}

// The checkpoint folder (or the model store) becoming unwritable ends the
// run with an error; the clients used to go on polling until they gave up.
TEST_F(CoordinatorTest, RunEndedByAStorageErrorStillTellsClientsItIsOver) {
  options_.num_rounds = 3;
  auto a = Add("a", Answer(1, 1));
  auto b = Add("b", Answer(1, 1));
  // A folder under a regular file cannot be created, even by root.
  ASSERT_TRUE(WriteFileAtomically(dir_.File("not-a-folder"), "x").ok());
  CheckpointWriter checkpoints(dir_.File("not-a-folder/checkpoint"),
                               RunIdentity{});
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Create(
      options_, &clients_, &fedavg_, store_.get(), Initial());
  ASSERT_TRUE(c.ok()) << c.status();
  (*c)->SetCheckpointWriter(&checkpoints);
  absl::StatusOr<std::vector<RoundRecord>> history = (*c)->Run();
  ASSERT_FALSE(history.ok());
  EXPECT_NE(history.status().message().find("checkpoint"), std::string::npos)
      << history.status();
  EXPECT_EQ(a->final_version(), 0) << "client 'a' was not told the run ended";
  EXPECT_EQ(b->final_version(), 0);
}

// A stop (SIGTERM) while the server waits for its first clients ends the
// wait, rather than the wait_for_clients_timeout later.
TEST_F(CoordinatorTest, StopRequestedWhileWaitingForClientsEndsTheRunAtOnce) {
  options_.wait_for_clients_timeout = absl::Seconds(60);
  options_.clock = &clock_;
  auto only = Add("only", Answer(1, 1));  // two are needed
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Create(
      options_, &clients_, &fedavg_, store_.get(), Initial());
  ASSERT_TRUE(c.ok()) << c.status();
  (*c)->RequestStop();
  absl::StatusOr<std::vector<RoundRecord>> history;
  std::thread run([&] { history = (*c)->Run(); });
  // One slice of the wait (1 s) is all it takes; the test would not end if
  // the Coordinator waited on for the other 59.
  clock_.BlockUntilWaiters(1);
  clock_.Advance(absl::Seconds(1));
  run.join();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_TRUE(history->empty());
  EXPECT_TRUE((*c)->stop_reason().empty()) << "a stopped run stays resumable";
  EXPECT_EQ(only->final_version(), 0);
}

TEST_F(CoordinatorTest, NoClientsInTimeIsAClearError) {
  options_.wait_for_clients_timeout = absl::Seconds(100);
  Add("only", Answer(1, 1));
  absl::StatusOr<std::vector<RoundRecord>> history = RunOnFakeClock([&] {
    clock_.BlockUntilWaiters(1);
    clock_.Advance(options_.wait_for_clients_timeout);
  });
  ASSERT_FALSE(history.ok());
  EXPECT_NE(history.status().message().find("only 1 of the 2"), std::string::npos)
      << history.status();
}

// A zero wait takes the pool's answer at once (the simulator's pool does its
// own waiting, in simulated time).
TEST_F(CoordinatorTest, ZeroWaitForClientsAsksThePoolOnce) {
  options_.wait_for_clients_timeout = absl::ZeroDuration();
  options_.clock = &clock_;  // never moved: the run must not wait on it
  Add("only", Answer(1, 1));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_FALSE(history.ok());
  EXPECT_NE(history.status().message().find("only 1 of the 2 clients needed are live"),
            std::string::npos)
      << history.status();
}

TEST_F(CoordinatorTest, StopsAtTheTargetAccuracy) {
  options_.num_rounds = 10;
  options_.target_accuracy = 0.5;
  // The "accuracy" of the global model is its first weight / 10: the global
  // model grows by 1 a round, so round 5 is the first to reach 0.5.
  fedavg_.set_server_evaluator([](const Parameters& p) -> absl::StatusOr<EvaluateRes> {
    EvaluateRes res;
    res.num_examples = 1;
    res.metrics["accuracy"] = p.tensor(0)[0].item<double>() / 10;
    return res;
  });
  Add("a", Answer(1, 1));
  Add("b", Answer(1, 1));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->size(), 6u);  // round 0 and rounds 1..5
  EXPECT_NE(coordinator_->stop_reason().find("reached the target 50.00% in round 5"),
            std::string::npos)
      << coordinator_->stop_reason();
  options_.target_accuracy = 1.5;
  EXPECT_FALSE(Run().ok());
}

TEST_F(CoordinatorTest, InvalidOptionsAndInitialModelAreRefused) {
  options_.sampling.fraction = 0;
  EXPECT_FALSE(Run().ok());
  options_.sampling.fraction = 1;
  options_.min_available_clients = 1;  // < min_fit_clients
  EXPECT_FALSE(Run().ok());
  options_.min_available_clients = 2;
  options_.max_examples_per_client = -1;
  absl::StatusOr<std::vector<RoundRecord>> refused = Run();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("max_examples_per_client"),
            std::string::npos)
      << refused.status();
  options_.max_examples_per_client = 0;
  Parameters bad;
  bad.Add("w", at::full({1}, std::numeric_limits<float>::quiet_NaN()));
  EXPECT_FALSE(Run(bad).ok());
}

// ------------------------------------------------------------ num_examples

// Regression: two clients claiming INT64_MAX examples overflowed the round's
// int64 sums (undefined behaviour; the history showed train_examples -2 and
// a NaN or absurd train_loss). With no cap configured and nothing declared
// they still weigh the same, so the loss is the plain mean of 1 and 3.
TEST_F(CoordinatorTest, Int64MaxExampleCountsKeepTheRoundsSumsFinite) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Add("a", Answer(1, kMax));
  Add("b", Answer(3, kMax));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.answered, 2u);
  EXPECT_EQ(r.train_examples, kMax);  // saturated, not wrapped
  EXPECT_DOUBLE_EQ(r.train_loss, 2.0);
  EXPECT_TRUE(
      at::allclose(coordinator_->global()->tensor(0), at::full({4}, 2.0f)));
}

TEST_F(CoordinatorTest, CountAboveTheConfiguredCapIsCountedAtTheCap) {
  options_.max_examples_per_client = 100;
  auto liar = Add("a", Answer(1, std::numeric_limits<int64_t>::max()));
  Add("b", Answer(3, 100));
  Add("c", Answer(5, 50));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  // Capped, not refused: weights 100, 100, 50 give
  // (100 * 1 + 100 * 3 + 50 * 5) / 250 = 2.6.
  EXPECT_EQ(r.answered, 3u);
  EXPECT_TRUE(r.failures.empty());
  for (const absl::Status& verdict : liar->verdicts())
    EXPECT_TRUE(verdict.ok()) << verdict;
  EXPECT_EQ(r.train_examples, 250);
  EXPECT_DOUBLE_EQ(r.train_loss, 2.6);
  EXPECT_TRUE(
      at::allclose(coordinator_->global()->tensor(0), at::full({4}, 2.6f)));
}

TEST_F(CoordinatorTest, DeviceAboveItsDeclaredCountIsCappedAtTheDeclaration) {
  // "a" declared 10 training examples at join and reports 1,000: it counts
  // 10. Weights 10 and 30: (10 * 1 + 30 * 3) / 40 = 2.5.
  Add("a", Answer(1, 1000))->Declare({/*train=*/10, /*evaluate=*/0});
  Add("b", Answer(3, 30))->Declare({/*train=*/30, /*evaluate=*/0});
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.train_examples, 40);
  EXPECT_DOUBLE_EQ(r.train_loss, 2.5);
  EXPECT_TRUE(
      at::allclose(coordinator_->global()->tensor(0), at::full({4}, 2.5f)));
}

TEST_F(CoordinatorTest, TheLowerOfDeclarationAndConfiguredCapApplies) {
  // Cap 20: "a" declared 10 (counts 10), "b" declared 1,000 (counts 20),
  // "c" declared nothing (counts 15, under the cap). By hand:
  // (10 * 1 + 20 * 3 + 15 * 6) / 45 = 160 / 45.
  options_.max_examples_per_client = 20;
  Add("a", Answer(1, 1000))->Declare({10, 0});
  Add("b", Answer(3, 30))->Declare({1000, 0});
  Add("c", Answer(6, 15));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.train_examples, 45);
  EXPECT_DOUBLE_EQ(r.train_loss, 160.0 / 45.0);
  EXPECT_TRUE(at::allclose(coordinator_->global()->tensor(0),
                           at::full({4}, static_cast<float>(160.0 / 45.0))));
}

// ------------------------------------------------------------ secure aggregation

// The bound secagg/update_codec.h states for n clients of total weight S:
// n * step * max_weight / S per element.
double SecureBound(const SecureAggregationOptions& o, size_t n, double total_weight) {
  return n * o.encoding.values.Step() * o.encoding.max_weight / total_weight;
}

TEST_F(CoordinatorTest, SecureAggregationGivesTheWeightedMeanWithinTheStatedBound) {
  options_.secure_aggregation.enabled = true;
  Add("a", Answer(0.5, 10));
  Add("b", Answer(-0.25, 30));
  Add("c", Answer(0.125, 60));
  Add("d", Answer(0.75, 100));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_TRUE(r.model_updated) << r.note;
  EXPECT_EQ(r.answered, 4u);
  EXPECT_EQ(r.train_examples, 200);
  EXPECT_TRUE(std::isnan(r.train_loss)) << "no client's loss is sent in the clear";
  // (0.5 * 10 - 0.25 * 30 + 0.125 * 60 + 0.75 * 100) / 200 = 0.4
  const double bound = SecureBound(options_.secure_aggregation, 4, 200);
  const at::Tensor w = coordinator_->global()->tensor(0);
  EXPECT_LT((w - 0.4).abs().max().item<double>(), bound);
  EXPECT_GT((w - 0.4).abs().max().item<double>(), 0) << "quantization should show";
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_degree")), 3);
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_masked")), 4);
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_unmasked")), 4);
}

TEST_F(CoordinatorTest, SecureAggregationSurvivesClientsVanishingAfterSharingKeys) {
  options_.secure_aggregation.enabled = true;
  options_.secure_aggregation.stage_timeout = absl::Seconds(30);
  options_.round_timeout = absl::Seconds(300);
  std::vector<std::shared_ptr<FakeClientProxy>> all;
  for (int i = 0; i < 5; ++i) all.push_back(Add(absl::StrCat("c", i), Answer(0.1f * i, 10 + i)));
  // Trains but never sends its masked input (vanishes after sharing keys).
  all.push_back(Add("gone", [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
    if (ins.secagg != nullptr) return std::nullopt;
    return absl::StatusOr<FitRes>(FitRes{});
  }));
  // Vanishes when the neighbours' keys arrive.
  all.push_back(Add("early", Answer(0.9f, 50)));
  all.back()->GoSilentAt(v1::SecAggServerMessage::kKeyList);
  SecureStages stages;
  observers_.push_back(&stages);
  absl::StatusOr<std::vector<RoundRecord>> history = RunOnFakeClock([&] {
    // 'share keys' waits for 'early' until its stage deadline...
    stages.WaitUntilClosed("advertise keys");
    clock_.BlockUntilWaiters(1);
    for (const auto& p : all) p->verdicts();  // every other answer is in
    clock_.Advance(options_.secure_aggregation.stage_timeout);
    // ...and 'masked input' for 'gone' until the round's deadline.
    stages.WaitUntilClosed("share keys");
    clock_.BlockUntilWaiters(1);
    for (const auto& p : all) p->verdicts();
    clock_.Advance(options_.round_timeout - options_.secure_aggregation.stage_timeout);
  });
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  ASSERT_TRUE(r.model_updated) << r.note;
  EXPECT_EQ(r.seconds, 300) << "the masked inputs were awaited until the round's deadline";
  EXPECT_EQ(r.answered, 5u);
  ASSERT_EQ(r.failures.size(), 2u);
  std::map<std::string, std::string> why;
  for (const ClientFailure& f : r.failures) why[f.client_id] = std::string(f.status.message());
  EXPECT_NE(why["early"].find("stage 'share keys'"), std::string::npos) << why["early"];
  EXPECT_NE(why["gone"].find("stage 'masked input'"), std::string::npos) << why["gone"];
  double sum = 0, weight = 0;
  for (int i = 0; i < 5; ++i) {
    sum += 0.1 * i * (10 + i);
    weight += 10 + i;
  }
  const at::Tensor w = coordinator_->global()->tensor(0);
  EXPECT_LT((w - sum / weight).abs().max().item<double>(),
            SecureBound(options_.secure_aggregation, 5, weight));
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_keys")), 7);
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_shares")), 6);
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_masked")), 5);
}

TEST_F(CoordinatorTest, SecureAggregationAbortsCleanlyWhenTooFewRemain) {
  options_.secure_aggregation.enabled = true;
  options_.round_timeout = absl::Seconds(120);
  options_.min_fit_clients = 1;
  std::vector<std::shared_ptr<FakeClientProxy>> all = {Add("a", Answer(0.5, 10))};
  for (const char* id : {"x", "y"}) {
    all.push_back(Add(id, [](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
      if (ins.secagg != nullptr) return std::nullopt;
      return absl::StatusOr<FitRes>(FitRes{});
    }));
  }
  SecureStages stages;
  observers_.push_back(&stages);
  absl::StatusOr<std::vector<RoundRecord>> history = RunOnFakeClock([&] {
    // 'masked input' waits for x and y until the round's deadline.
    stages.WaitUntilClosed("share keys");
    PassRoundDeadline(all);
  });
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_FALSE(r.model_updated);
  EXPECT_EQ(r.seconds, 120);
  EXPECT_NE(r.note.find("secure aggregation aborted: only 1 of 3 clients sent masked inputs"),
            std::string::npos)
      << r.note;
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(0), at::zeros({4})));
}

TEST(SecureAggregationSupportTest, OnlyMeanBasedStrategiesAreAllowed) {
  const std::set<std::string> mean_based = {"fedavg",  "fedprox", "fedavgm",
                                            "fedadam", "fedyogi", "fedadagrad"};
  for (const std::string& name : RegisteredStrategies()) {
    StrategyContext context;
    context.min_fit_clients = 10;
    auto strategy = CreateStrategy(name, nlohmann::json::object(), context);
    ASSERT_TRUE(strategy.ok()) << name << ": " << strategy.status();
    absl::Status supported = CheckSecureAggregationSupported(**strategy);
    EXPECT_EQ(supported.ok(), mean_based.count(name) == 1) << name;
    if (!supported.ok()) {
      EXPECT_NE(supported.message().find("'" + name + "'"), std::string::npos) << supported;
    }
  }
}

TEST_F(CoordinatorTest, SecureAggregationRefusesAPerClientStrategyBeforeAnyRound) {
  options_.secure_aggregation.enabled = true;
  Add("a", Answer(0.5, 10));
  FedMedian median({});
  absl::StatusOr<std::unique_ptr<Coordinator>> c =
      Coordinator::Create(options_, &clients_, &median, store_.get(), Initial());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("'fedmedian'"), std::string::npos) << c.status();
}

TEST_F(CoordinatorTest, FrozenTensorsAreNamedInEveryTaskNotSentAndCountedUnchanged) {
  options_.train_only = {"w"};
  std::vector<std::vector<std::string>> frozen;
  absl::Mutex mu;
  auto head_only = [&](float value, bool send_frozen) {
    return [&, value, send_frozen](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
      {
        absl::MutexLock lock(&mu);
        frozen.emplace_back(ins.config.frozen().begin(), ins.config.frozen().end());
      }
      FitRes res;
      res.update.Add("w", at::full({4}, value));
      if (send_frozen) res.update.Add("b", at::full({1}, value));
      res.num_examples = 1;
      return res;
    };
  };
  Add("a", head_only(1, false));
  Add("b", head_only(3, false));
  Add("c", head_only(5, true));  // sends a frozen tensor: refused
  options_.min_fit_clients = 2;
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  const RoundRecord& r = (*history)[1];
  EXPECT_EQ(r.answered, 2u);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_NE(r.failures[0].status.message().find("tensor 'b' is frozen"), std::string::npos)
      << r.failures[0].status;
  EXPECT_EQ(frozen, (std::vector<std::vector<std::string>>(3, {"b"})));
  EXPECT_TRUE(at::allclose(coordinator_->global()->tensor(0), at::full({4}, 2.0f)));
  EXPECT_TRUE(at::equal(coordinator_->global()->tensor(1), at::zeros({1})));
}

TEST_F(CoordinatorTest, FreezePatternsAreCheckedAgainstTheModelBeforeAnyRound) {
  auto error = [&] {
    absl::StatusOr<std::unique_ptr<Coordinator>> c =
        Coordinator::Create(options_, &clients_, &fedavg_, store_.get(), Initial());
    return c.ok() ? std::string("created") : std::string(c.status().message());
  };
  options_.freeze = {"fc*"};
  EXPECT_NE(error().find("fit.freeze pattern 'fc*' matches no tensor of the model (w, b)"),
            std::string::npos)
      << error();
  options_.freeze = {"*"};
  EXPECT_NE(error().find("leaves no floating-point tensor to train"), std::string::npos);
  options_.freeze = {"b"};
  EXPECT_EQ(error(), "created");
  options_.personal = {"x*"};
  EXPECT_NE(error().find("fit.personal pattern 'x*' matches no tensor"), std::string::npos);
  options_.personal = {"w"};
  EXPECT_EQ(error(), "created");
  options_.secure_aggregation.enabled = true;
  EXPECT_NE(error().find("cannot be combined with secure aggregation"), std::string::npos);
}

TEST(CompressionSupportTest, QuantizersComposeWithEveryStrategyAndTopKOnlyWithSums) {
  const std::set<std::string> compare_whole = {"fedmedian", "fedtrimmedavg", "krum",
                                               "multikrum", "bulyan"};
  for (const std::string& name : RegisteredStrategies()) {
    StrategyContext context;
    context.min_fit_clients = 10;
    auto strategy = CreateStrategy(name, nlohmann::json::object(), context);
    ASSERT_TRUE(strategy.ok()) << name << ": " << strategy.status();
    EXPECT_TRUE((*strategy)->CheckCompression(Compression::kQuantize8).ok()) << name;
    EXPECT_TRUE((*strategy)->CheckCompression(Compression::kQuantize4).ok()) << name;
    absl::Status topk = (*strategy)->CheckCompression(Compression::kTopK);
    EXPECT_EQ(topk.ok(), compare_whole.count(name) == 0) << name;
    if (!topk.ok()) {
      EXPECT_NE(topk.message().find("'" + name + "'"), std::string::npos) << topk;
    }
  }
}

TEST_F(CoordinatorTest, CompressionIsRefusedWithSecureAggregationBeforeAnyRound) {
  options_.secure_aggregation.enabled = true;
  options_.compression.kind = Compression::kQuantize8;
  absl::StatusOr<std::unique_ptr<Coordinator>> c =
      Coordinator::Create(options_, &clients_, &fedavg_, store_.get(), Initial());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("compression 'q8' cannot be combined with secure "
                                      "aggregation"),
            std::string::npos)
      << c.status();
  options_.secure_aggregation.enabled = false;
  options_.compression.kind = Compression::kTopK;
  FedMedian median({});
  c = Coordinator::Create(options_, &clients_, &median, store_.get(), Initial());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'fedmedian'"), std::string::npos) << c.status();
}

TEST_F(CoordinatorTest, EveryFitTaskCarriesTheCompressionAndUploadBytesAreSummed) {
  options_.compression = {Compression::kTopK, 256, 0.25};
  std::vector<std::string> kinds;
  absl::Mutex mu;
  auto answer = [&](float value) {
    return [&, value](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
      {
        absl::MutexLock lock(&mu);
        kinds.push_back(ins.config.compression().kind());
      }
      EXPECT_DOUBLE_EQ(ins.config.compression().fraction(), 0.25);
      std::optional<absl::StatusOr<FitRes>> res = Answer(value, 1)(ins);
      (**res).upload_bytes = 100;
      return res;
    };
  };
  Add("a", answer(1));
  Add("b", answer(3));
  absl::StatusOr<std::vector<RoundRecord>> history = Run();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(kinds, (std::vector<std::string>{"topk", "topk"}));
  EXPECT_EQ((*history)[1].upload_bytes, 200);
}

}  // namespace
}  // namespace shoal
