// The serving store (common/serving_store.h) and the device's guard
// (client/serving_guard.h): signed serving versions kept across restarts,
// refused when unsigned, foreign, not serving versions or not newer, skipped
// when damaged on disk; and the guard that keeps a worse model out.
#include "common/serving_store.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "client/serving_guard.h"
#include "client/serving_runtime.h"
#include "common/files.h"
#include "common/sha256.h"
#include "tests/signing_testing.h"

namespace shoal::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSpec[] = "logreg-2-2";

// Logreg2 is a logistic regression on two features whose class-1 logit is
// `w` * x0 and class-0 logit is -`w` * x0: with w > 0 it says "x0 > 0", with
// w < 0 the opposite.
std::unique_ptr<Model> Logreg2(float w) {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(kSpec);
  EXPECT_TRUE(spec.ok()) << spec.status();
  std::unique_ptr<Model> model = *CreateModel(*spec, 1);
  Parameters p = model->GetParameters();
  for (size_t i = 0; i < p.size(); ++i) {
    at::Tensor& t = p.mutable_tensor(i);
    t.zero_();
    if (t.dim() == 2) {  // the [2, 2] weight
      t[0][0] = -w;
      t[1][0] = w;
    }
  }
  EXPECT_TRUE(model->SetParameters(p).ok());
  return model;
}

class ServingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::SigningKeys keys = testing::MakeSigningKeys(dir_, "model-signing");
    signer_ = keys.signer;
    verifier_ = keys.verifier;
    other_signer_ = testing::MakeSigningKeys(dir_, "other").signer;
  }

  ServingStore Open(int keep = 2) {
    absl::StatusOr<ServingStore> store = ServingStore::Open({dir_.File("serving"), verifier_, keep});
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }

  // Version returns serving version `v` of Logreg2(w), signed by `signer`
  // (null: unsigned), and its payload.
  std::pair<ModelRecord, std::string> Version(int64_t v, float w,
                                              const ModelSigner* signer) const {
    const std::string payload = SerializeParameters(Logreg2(w)->GetParameters());
    ModelRecord r;
    r.version = v;
    r.model_spec = kSpec;
    r.serving = ServingOrigin{"run-1", 10 + v};
    if (signer != nullptr) {
      r.signature = *signer->Sign(SignedModel{v, Sha256(payload), kSpec, "", r.serving});
    }
    return {r, payload};
  }

  testing::TempDir dir_;
  std::shared_ptr<const ModelSigner> signer_, other_signer_;
  std::shared_ptr<const ModelVerifier> verifier_;
};

TEST_F(ServingStoreTest, InstalledVersionsSurviveARestartAndTheNewestIsServed) {
  {
    ServingStore store = Open();
    auto [r1, p1] = Version(1, 1.0f, signer_.get());
    auto [r2, p2] = Version(2, 2.0f, signer_.get());
    ASSERT_TRUE(store.Install(r1, p1, {kSpec, ""}).ok());
    ASSERT_TRUE(store.Install(r2, p2, {kSpec, ""}).ok());
  }
  ServingStore restarted = Open();  // a new process, the same folder
  absl::StatusOr<std::optional<LoadedModelVersion>> newest = restarted.LoadNewest();
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_TRUE(newest->has_value());
  EXPECT_EQ((*newest)->record.version, 2);
  ASSERT_TRUE((*newest)->record.serving.has_value());
  EXPECT_EQ((*newest)->record.serving->run, "run-1");
  EXPECT_EQ((*newest)->record.serving->training_version, 12);
  EXPECT_EQ(SerializeParameters((*newest)->params), Version(2, 2.0f, nullptr).second);
}

TEST_F(ServingStoreTest, RefusesUnsignedForeignTrainingAndOlderVersionsAndWritesNothing) {
  ServingStore store = Open();
  auto [r2, p2] = Version(2, 2.0f, signer_.get());
  ASSERT_TRUE(store.Install(r2, p2, {kSpec, ""}).ok());

  auto [unsigned_r, unsigned_p] = Version(3, 3.0f, nullptr);
  EXPECT_EQ(store.Install(unsigned_r, unsigned_p, {kSpec, ""}).code(),
            absl::StatusCode::kPermissionDenied);
  auto [foreign_r, foreign_p] = Version(3, 3.0f, other_signer_.get());
  EXPECT_EQ(store.Install(foreign_r, foreign_p, {kSpec, ""}).code(),
            absl::StatusCode::kPermissionDenied);
  // A genuine training version is not a serving version.
  ModelRecord training = foreign_r;
  training.serving.reset();
  training.signature = *signer_->Sign(SignedModel{3, Sha256(foreign_p), kSpec, ""});
  absl::Status not_serving = store.Install(training, foreign_p, {kSpec, ""});
  EXPECT_EQ(not_serving.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(not_serving.message(), HasSubstr("not a serving version"));
  // Genuine weights under another origin than signed.
  auto [moved_r, moved_p] = Version(3, 3.0f, signer_.get());
  moved_r.serving->training_version = 99;
  EXPECT_EQ(store.Install(moved_r, moved_p, {kSpec, ""}).code(),
            absl::StatusCode::kPermissionDenied);
  // A genuine older version cannot be replayed.
  auto [r1, p1] = Version(1, 1.0f, signer_.get());
  absl::Status replay = store.Install(r1, p1, {kSpec, ""});
  EXPECT_EQ(replay.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(replay.message(), HasSubstr("not newer than serving version 2"));
  // Code the manifest does not name.
  auto [r3, p3] = Version(3, 3.0f, signer_.get());
  EXPECT_EQ(store.Install(r3, p3, {kTorchScriptModelSpec, "some code"}).code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_THAT(store.versions(), ElementsAre(2));
  EXPECT_EQ((*store.LoadNewest())->record.version, 2);
}

TEST_F(ServingStoreTest, AVersionDamagedOnDiskIsSkippedForTheNewestOlderOneThatVerifies) {
  ServingStore store = Open();
  for (int64_t v = 1; v <= 2; ++v) {
    auto [r, p] = Version(v, static_cast<float>(v), signer_.get());
    ASSERT_TRUE(store.Install(r, p, {kSpec, ""}).ok());
  }
  // Version 2's weights altered on disk (its manifest untouched).
  const std::string params = store.dir() + "/model-000002.params";
  std::string bytes = *ReadFile(params);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(params, bytes).ok());
  // A training version planted as version 3, genuinely signed as training.
  auto [r3, p3] = Version(3, 3.0f, nullptr);
  r3.serving.reset();
  r3.signature = *signer_->Sign(SignedModel{3, Sha256(p3), kSpec, ""});
  ASSERT_TRUE(WriteModelVersion(store.dir(), r3, p3).ok());

  std::vector<std::string> skipped;
  absl::StatusOr<std::optional<LoadedModelVersion>> newest = store.LoadNewest(&skipped);
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_TRUE(newest->has_value());
  EXPECT_EQ((*newest)->record.version, 1);
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_THAT(skipped[0], HasSubstr("serving version 3"));
  EXPECT_THAT(skipped[0], HasSubstr("a training version where a serving version is expected"));
  EXPECT_THAT(skipped[1], HasSubstr("serving version 2"));
}

TEST_F(ServingStoreTest, KeepsTheNewestVersionAndKeepOlderOnes) {
  ServingStore store = Open(/*keep=*/1);
  for (int64_t v = 1; v <= 4; ++v) {
    auto [r, p] = Version(v, static_cast<float>(v), signer_.get());
    ASSERT_TRUE(store.Install(r, p, {kSpec, ""}).ok()) << v;
  }
  EXPECT_THAT(store.versions(), ElementsAre(3, 4));
  EXPECT_FALSE(ServingStore::Open({dir_.File("x"), nullptr, 1}).ok());  // no key
  EXPECT_FALSE(ServingStore::Open({dir_.File("x"), verifier_, -1}).ok());
}

// The runtime on a device whose held-out data says "class 1 iff x0 > 0".
class ServingRuntimeTest : public ServingStoreTest {
 protected:
  void SetUp() override {
    ServingStoreTest::SetUp();
    const at::Tensor x = at::randn({200, 2}, at::TensorOptions().dtype(at::kFloat));
    holdout_ = InMemory(Dataset{x, x.select(1, 0).gt(0).to(at::kLong)});
  }
  std::unique_ptr<ServingRuntime> OpenRuntime() {
    ServingRuntimeOptions options;
    options.store = {dir_.File("serving"), verifier_, 2};
    absl::StatusOr<std::unique_ptr<ServingRuntime>> runtime =
        ServingRuntime::Open(options, holdout_);
    EXPECT_TRUE(runtime.ok()) << runtime.status();
    return runtime.ok() ? *std::move(runtime) : nullptr;
  }
  absl::StatusOr<OfferOutcome> Offer(ServingRuntime& runtime, int64_t v, float w,
                                     const ModelSigner* signer) {
    auto [r, p] = Version(v, w, signer);
    return runtime.Offer(r, p, {kSpec, ""});
  }
  std::shared_ptr<const ExampleSource> holdout_;
};

TEST_F(ServingRuntimeTest, TakesBetterVersionsWhilePredictingAndServesFromDiskAfterARestart) {
  std::unique_ptr<ServingRuntime> runtime = OpenRuntime();
  ASSERT_NE(runtime, nullptr);
  const at::Tensor x = at::randn({8, 2});
  EXPECT_EQ(runtime->serving().Predict(x).status().code(), absl::StatusCode::kUnavailable);
  // Nothing served yet: even a poor first version is taken.
  absl::StatusOr<OfferOutcome> first = Offer(*runtime, 1, -5.0f, signer_.get());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->installed);
  EXPECT_EQ(runtime->version(), 1);

  std::atomic<bool> done{false};
  std::atomic<int64_t> failed{0}, answered{0};
  std::thread caller([&] {
    while (!done.load()) {
      absl::StatusOr<Served> s = runtime->serving().Predict(x);
      s.ok() ? ++answered : ++failed;
    }
  });
  // Predictions are running before the swap and go on after it (waited
  // for, not timed: a loaded machine may schedule the caller late).
  while (answered.load() == 0) std::this_thread::yield();
  absl::StatusOr<OfferOutcome> better = Offer(*runtime, 2, 5.0f, signer_.get());
  const int64_t before_swap_done = answered.load();
  while (answered.load() == before_swap_done && failed.load() == 0) std::this_thread::yield();
  done = true;
  caller.join();
  ASSERT_TRUE(better.ok()) << better.status();
  EXPECT_TRUE(better->installed) << better->reason;
  ASSERT_TRUE(better->verdict.has_value());
  EXPECT_DOUBLE_EQ(better->verdict->candidate, 1.0);
  EXPECT_DOUBLE_EQ(better->verdict->current, 0.0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(runtime->version(), 2);

  // A restart with no server anywhere: version 2 serves from disk at once.
  runtime.reset();
  std::unique_ptr<ServingRuntime> restarted = OpenRuntime();
  ASSERT_NE(restarted, nullptr);
  EXPECT_EQ(restarted->version(), 2);
  absl::StatusOr<Served> served = restarted->serving().Predict(x);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->version, 2);
}

TEST_F(ServingRuntimeTest, AWorseVersionIsRefusedOnceKeepsTheCurrentOneAndIsNeverStored) {
  std::unique_ptr<ServingRuntime> runtime = OpenRuntime();
  ASSERT_NE(runtime, nullptr);
  ASSERT_TRUE(Offer(*runtime, 2, 5.0f, signer_.get())->installed);
  absl::StatusOr<OfferOutcome> worse = Offer(*runtime, 3, -5.0f, signer_.get());
  ASSERT_TRUE(worse.ok()) << worse.status();
  EXPECT_FALSE(worse->installed);
  EXPECT_THAT(worse->reason, HasSubstr("beyond the margin"));
  EXPECT_EQ(runtime->version(), 2);
  EXPECT_THAT(ServingStore::Open({dir_.File("serving"), verifier_, 2})->versions(),
              ElementsAre(2));
  // Offered again: the same answer, not judged again (no verdict rebuilt).
  absl::StatusOr<OfferOutcome> again = Offer(*runtime, 3, -5.0f, signer_.get());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->installed);
  EXPECT_EQ(again->reason, worse->reason);
  // Errors change nothing: unsigned, foreign, or not newer.
  EXPECT_EQ(Offer(*runtime, 4, 5.0f, nullptr).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Offer(*runtime, 4, 5.0f, other_signer_.get()).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Offer(*runtime, 2, 5.0f, signer_.get()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(runtime->version(), 2);
}

// A rollback offers, under a new number, weights the device served before:
// it takes them without judging them again, even when the guard would
// prefer what it serves now; weights it never served are still judged.
TEST_F(ServingRuntimeTest, ARollbackToWeightsServedBeforeIsTakenWithoutTheGuard) {
  std::unique_ptr<ServingRuntime> runtime = OpenRuntime();
  ASSERT_NE(runtime, nullptr);
  ASSERT_TRUE(Offer(*runtime, 1, -5.0f, signer_.get())->installed);  // the first: taken
  ASSERT_TRUE(Offer(*runtime, 2, 5.0f, signer_.get())->installed);   // better
  absl::StatusOr<OfferOutcome> rollback = Offer(*runtime, 3, -5.0f, signer_.get());
  ASSERT_TRUE(rollback.ok()) << rollback.status();
  EXPECT_TRUE(rollback->installed) << rollback->reason;
  EXPECT_THAT(rollback->reason, HasSubstr("same model as serving version 1"));
  EXPECT_FALSE(rollback->verdict.has_value());
  EXPECT_EQ(runtime->version(), 3);
  absl::StatusOr<OfferOutcome> unseen = Offer(*runtime, 4, -4.0f, signer_.get());
  ASSERT_TRUE(unseen.ok()) << unseen.status();
  EXPECT_TRUE(unseen->verdict.has_value());
}

// The guard on a device whose held-out data says "class 1 iff x0 > 0": a
// model made worse on purpose (the rule reversed) is refused against the
// right one, the right one is accepted against the reversed one, and with
// nothing served any candidate that evaluates is accepted.
TEST(ServingGuardTest, AModelMadeWorseOnPurposeIsRefusedAndABetterOneAccepted) {
  const at::Tensor x = at::randn({200, 2}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor y = x.select(1, 0).gt(0).to(at::kLong);
  std::shared_ptr<const ExampleSource> holdout = InMemory(Dataset{x, y});
  Trainer trainer = *Trainer::Create({});
  std::unique_ptr<Model> good = Logreg2(5.0f), bad = Logreg2(-5.0f);

  absl::StatusOr<GuardVerdict> refused = GuardServing(trainer, *holdout, *bad, good.get());
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_FALSE(refused->accept);
  EXPECT_EQ(refused->metric, "accuracy");
  EXPECT_DOUBLE_EQ(refused->current, 1.0);
  EXPECT_DOUBLE_EQ(refused->candidate, 0.0);
  EXPECT_THAT(refused->reason, HasSubstr("beyond the margin"));

  absl::StatusOr<GuardVerdict> accepted = GuardServing(trainer, *holdout, *good, bad.get());
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_TRUE(accepted->accept) << accepted->reason;

  // Equal models are within any margin, even 0.
  EXPECT_TRUE(GuardServing(trainer, *holdout, *good, Logreg2(5.0f).get(), {0.0, 64})->accept);
  absl::StatusOr<GuardVerdict> first = GuardServing(trainer, *holdout, *bad, nullptr);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->accept);
  EXPECT_THAT(first->reason, HasSubstr("nothing served before"));

  std::shared_ptr<const ExampleSource> none = InMemory(Dataset{x.slice(0, 0, 0), y.slice(0, 0, 0)});
  EXPECT_EQ(GuardServing(trainer, *none, *good, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace shoal::client
