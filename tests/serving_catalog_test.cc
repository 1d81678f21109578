// The server's serving versions (server/serving_catalog.h): promotion signs a
// run's version as the next serving version, which a device's store
// accepts; rollbacks walk back through the lineage; restarts keep it; bad
// requests and damaged files are refused with their names.
#include "server/serving_catalog.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/clock.h"
#include "common/files.h"
#include "common/sha256.h"
#include "server/rollout.h"
#include "tests/signing_testing.h"

namespace shoal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ServingCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::SigningKeys keys = testing::MakeSigningKeys(dir_, "model-signing");
    signer_ = keys.signer;
    verifier_ = keys.verifier;
    other_signer_ = testing::MakeSigningKeys(dir_, "other").signer;
  }

  // Train writes training versions 0..n-1 of run `run` (weights filled with
  // the version plus `offset`), signed by `signer`, and returns the folder.
  std::string Train(const std::string& run, int n, float offset = 0,
                    const ModelSigner* signer = nullptr) {
    const std::string models = dir_.File(run + "/models");
    for (int v = 0; v < n; ++v) {
      Parameters p;
      p.Add("w", at::full({4}, static_cast<float>(v) + offset));
      const std::string payload = SerializeParameters(p);
      ModelRecord r;
      r.version = v;
      r.model_spec = "logreg-2-2";
      r.metrics["test_accuracy"] = 0.5 + 0.1 * v;
      r.signature = *(signer ? signer : signer_.get())
                         ->Sign(SignedModel{v, Sha256(payload), r.model_spec, ""});
      EXPECT_TRUE(WriteModelVersion(models, r, payload).ok());
    }
    return models;
  }

  std::unique_ptr<ServingCatalog> Open() {
    absl::StatusOr<std::unique_ptr<ServingCatalog>> c =
        ServingCatalog::Open({dir_.File("serving"), signer_, verifier_, 20});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Weight is the first weight of serving version `v`.
  float Weight(const ServingCatalog& c, int64_t v) {
    absl::StatusOr<LoadedModelVersion> loaded = c.Load(v);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? loaded->params.tensor(0)[0].item<float>() : -1;
  }

  testing::TempDir dir_;
  std::shared_ptr<const ModelSigner> signer_, other_signer_;
  std::shared_ptr<const ModelVerifier> verifier_;
};

TEST_F(ServingCatalogTest, PromotionSignsTheRunsModelAsTheNextServingVersionADeviceAccepts) {
  const std::string models = Train("run-a", 3);
  std::unique_ptr<ServingCatalog> catalog = Open();
  EXPECT_FALSE(catalog->Current().has_value());
  absl::StatusOr<ModelRecord> first = catalog->Promote("run-a", models, 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version, 1);
  ASSERT_TRUE(first->serving.has_value());
  EXPECT_EQ(first->serving->run, "run-a");
  EXPECT_EQ(first->serving->training_version, 1);
  EXPECT_DOUBLE_EQ(MetricAsDouble(first->metrics.at("test_accuracy")), 0.6);
  absl::StatusOr<ModelRecord> newest = catalog->Promote("run-a", models);  // the latest: 2
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->version, 2);
  EXPECT_EQ(newest->serving->training_version, 2);
  EXPECT_EQ(catalog->Current()->version, 2);

  // What a device receives (manifest fields and the bytes stored) installs
  // in its own store under the public key.
  absl::StatusOr<ServingStore> device =
      ServingStore::Open({dir_.File("device"), verifier_, 2});
  ASSERT_TRUE(device.ok());
  for (int64_t v : {1, 2}) {
    absl::StatusOr<LoadedModelVersion> served = catalog->Load(v);
    ASSERT_TRUE(served.ok()) << served.status();
    absl::StatusOr<std::string> payload = ReadModelPayload(catalog->dir(), served->record);
    ASSERT_TRUE(payload.ok());
    absl::Status installed = device->Install(served->record, *payload, served->code);
    EXPECT_TRUE(installed.ok()) << installed;
  }
}

TEST_F(ServingCatalogTest, RollbacksWalkBackThroughTheLineageAcrossRestarts) {
  const std::string a = Train("run-a", 1, 10), b = Train("run-b", 1, 20), c = Train("run-c", 1, 30);
  {
    std::unique_ptr<ServingCatalog> catalog = Open();
    ASSERT_TRUE(catalog->Promote("run-a", a).ok());  // 1
    ASSERT_TRUE(catalog->Promote("run-b", b).ok());  // 2
    absl::StatusOr<ModelRecord> back = catalog->Rollback();  // 3 = run-a again
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->version, 3);
    EXPECT_EQ(back->serving->run, "run-a");
    EXPECT_EQ(Weight(*catalog, 3), 10.0f);
    EXPECT_THAT(catalog->Lineage(), ElementsAre(3));
    // Nothing below run-a: a second rollback does not bounce back to run-b.
    absl::StatusOr<ModelRecord> again = catalog->Rollback();
    EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(again.status().message(), HasSubstr("first of its lineage"));
    ASSERT_TRUE(catalog->Promote("run-c", c).ok());  // 4
    EXPECT_THAT(catalog->Lineage(), ElementsAre(3, 4));
  }
  std::unique_ptr<ServingCatalog> restarted = Open();
  EXPECT_THAT(restarted->Lineage(), ElementsAre(3, 4));
  absl::StatusOr<ModelRecord> back = restarted->Rollback();  // 5 = run-a
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->version, 5);
  EXPECT_EQ(back->serving->run, "run-a");
  EXPECT_EQ(Weight(*restarted, 5), 10.0f);
  EXPECT_EQ(restarted->Current()->version, 5);
}

TEST_F(ServingCatalogTest, RefusesMissingVersionsForeignModelsBadRunsAndDamagedLineages) {
  const std::string models = Train("run-a", 2);
  const std::string foreign = Train("run-x", 1, 0, other_signer_.get());
  std::unique_ptr<ServingCatalog> catalog = Open();
  absl::StatusOr<ModelRecord> missing = catalog->Promote("run-a", models, 9);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("run 'run-a' has no model version 9"));
  EXPECT_EQ(catalog->Promote("run-x", foreign).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(catalog->Promote("../etc", models).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(catalog->Rollback().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(catalog->Current().has_value());
  ASSERT_TRUE(catalog->Promote("run-a", models, 0).ok());

  // A lineage entry whose version never got stored (a crash between the
  // two writes) is dropped; a lineage that does not parse is named.
  const std::string lineage = dir_.File("serving/lineage.json");
  ASSERT_TRUE(WriteFileAtomically(lineage, R"({"format": 1, "lineage": [1, 2]})").ok());
  EXPECT_THAT(Open()->Lineage(), ElementsAre(1));
  ASSERT_TRUE(WriteFileAtomically(lineage, R"({"format": 1, "lineage": "x"})").ok());
  absl::StatusOr<std::unique_ptr<ServingCatalog>> damaged =
      ServingCatalog::Open({dir_.File("serving"), signer_, verifier_, 20});
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(damaged.status().message(), HasSubstr("lineage.json"));
  EXPECT_EQ(ServingCatalog::Open({dir_.File("s2"), nullptr, verifier_, 20}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Automatic promotion after a run (AutoPromoter): at the run's last round,
// or the round that reaches its target accuracy, the run's newest model is
// promoted when it beats the serving one by the margin.
TEST_F(ServingCatalogTest, AutoPromotionPromotesAFinalModelThatBeatsTheServingOneByTheMargin) {
  std::unique_ptr<ServingCatalog> catalog = Open();
  RolloutOptions options;
  options.canary_fraction = 0;
  Rollout rollout(options, catalog.get());
  auto round = [](uint32_t r, double accuracy) {
    RoundRecord record;
    record.round = r;
    record.server_eval = EvaluateRes{100, 0.5, {{"accuracy", accuracy}}};
    return record;
  };
  // Nothing served yet: the final model (test_accuracy 0.6) is promoted, at
  // the last round and not before.
  AutoPromoter first(&rollout, catalog.get(), "run-a", Train("run-a", 2), 2, 0.01);
  first.OnRoundEnd(round(1, 0.5));
  EXPECT_TRUE(first.decision().empty());
  first.OnRoundEnd(round(2, 0.6));
  EXPECT_THAT(first.decision(), HasSubstr("promoted model version 1 as serving version 1"));
  EXPECT_EQ(catalog->Current()->version, 1);
  // As good, not better by the margin: not promoted.
  AutoPromoter same(&rollout, catalog.get(), "run-b", Train("run-b", 2), 2, 0.01);
  same.OnRoundEnd(round(2, 0.6));
  EXPECT_THAT(same.decision(), HasSubstr("not better by the margin"));
  EXPECT_EQ(catalog->Current()->version, 1);
  // A run that reaches its target accuracy (0.85) in round 3 of 10 ends
  // there, and its model (test_accuracy 0.9) is promoted.
  AutoPromoter target(&rollout, catalog.get(), "run-c", Train("run-c", 5), 10, 0.01, 0.85);
  target.OnRoundEnd(round(2, 0.8));
  EXPECT_TRUE(target.decision().empty());
  target.OnRoundEnd(round(3, 0.9));
  EXPECT_THAT(target.decision(), HasSubstr("as serving version 2"));
  EXPECT_EQ(catalog->Current()->serving->run, "run-c");
}

// Staged rollout (server/rollout.h) over a catalog holding run A as serving
// version 1, with run B promoted as version 2 to a canary of half the fleet.
class RolloutTest : public ServingCatalogTest {
 protected:
  void SetUp() override {
    ServingCatalogTest::SetUp();
    a_ = Train("run-a", 1, 10);
    b_ = Train("run-b", 1, 20);
    catalog_ = Open();
  }
  std::unique_ptr<Rollout> Start(RolloutOptions options) {
    options.clock = &clock_;
    auto rollout = std::make_unique<Rollout>(options, catalog_.get());
    EXPECT_TRUE(rollout->Promote("run-a", a_).ok());  // the first: everyone at once
    EXPECT_EQ(rollout->status().stage, RolloutStage::kComplete);
    EXPECT_TRUE(rollout->Promote("run-b", b_).ok());
    for (int i = 0; i < 40; ++i) {
      const std::string id = absl::StrCat("device-", i);
      (rollout->IsCanary(id, 2) ? canaries_ : others_).push_back(id);
    }
    return rollout;
  }
  static v1::ServingReport Report(bool accepted, double offered, double current) {
    v1::ServingReport r;
    r.set_offered_version(2);
    r.set_accepted(accepted);
    r.set_metric("accuracy");
    r.set_offered_value(offered);
    r.set_current_value(current);
    return r;
  }
  int64_t Offered(Rollout& rollout, const std::string& id) {
    std::optional<v1::ModelVersion> offer = rollout.OfferFor(id);
    return offer ? offer->version() : -1;
  }

  FakeClock clock_;
  std::string a_, b_;
  std::unique_ptr<ServingCatalog> catalog_;
  std::vector<std::string> canaries_, others_;
};

TEST_F(RolloutTest, TheCanaryGetsTheNewVersionFirstAndGoodReportsCompleteIt) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  options.min_canary_reports = 2;
  std::unique_ptr<Rollout> rollout = Start(options);
  ASSERT_GE(canaries_.size(), 3u);  // of 40, by the hash
  ASSERT_GE(others_.size(), 3u);
  EXPECT_EQ(rollout->status().stage, RolloutStage::kCanary);
  EXPECT_EQ(Offered(*rollout, canaries_[0]), 2);
  EXPECT_EQ(Offered(*rollout, others_[0]), 1);
  // Reports that do not count: a non-canary's, another version's, a repeat.
  rollout->Report(others_[0], Report(false, 0, 1));
  v1::ServingReport stale = Report(false, 0, 1);
  stale.set_offered_version(1);
  rollout->Report(canaries_[0], stale);
  rollout->Report(canaries_[0], Report(true, 0.90, 0.88));
  rollout->Report(canaries_[0], Report(false, 0, 1));
  EXPECT_EQ(rollout->status().canary_reports, 1);
  EXPECT_EQ(rollout->status().stage, RolloutStage::kCanary);
  rollout->Report(canaries_[1], Report(true, 0.87, 0.88));  // within the margin
  const RolloutStatus done = rollout->status();
  EXPECT_EQ(done.stage, RolloutStage::kComplete);
  EXPECT_NEAR(done.mean_change, 0.005, 1e-12);
  EXPECT_THAT(done.reason, HasSubstr("offered to every device"));
  EXPECT_EQ(Offered(*rollout, others_[0]), 2);
}

TEST_F(RolloutTest, RefusingCanariesRevertItByItselfAndTheFleetGetsTheOldWeights) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  options.min_canary_reports = 2;
  std::unique_ptr<Rollout> rollout = Start(options);
  rollout->Report(canaries_[0], Report(false, 0.2, 0.9));
  rollout->Report(canaries_[1], Report(false, 0.3, 0.9));
  const RolloutStatus reverted = rollout->status();
  EXPECT_EQ(reverted.stage, RolloutStage::kReverted);
  EXPECT_THAT(reverted.reason, HasSubstr("2 of 2 canary devices refused it"));
  EXPECT_EQ(reverted.version, 3);  // run A's weights under a new number
  for (const std::string& id : {canaries_[0], others_[0]}) {
    std::optional<v1::ModelVersion> offer = rollout->OfferFor(id);
    ASSERT_TRUE(offer.has_value());
    EXPECT_EQ(offer->version(), 3);
    EXPECT_EQ(offer->serving().run(), "run-a");
  }
  EXPECT_EQ(Weight(*catalog_, 3), 10.0f);
}

TEST_F(RolloutTest, AWorseCanaryMetricRevertsEvenWhenNoDeviceRefused) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  options.min_canary_reports = 2;
  options.margin = 0.01;
  std::unique_ptr<Rollout> rollout = Start(options);
  rollout->Report(canaries_[0], Report(true, 0.85, 0.88));
  rollout->Report(canaries_[1], Report(true, 0.86, 0.88));
  EXPECT_EQ(rollout->status().stage, RolloutStage::kReverted);
  EXPECT_THAT(rollout->status().reason, HasSubstr("worse by 0.025 on average"));
}

TEST_F(RolloutTest, ACanaryWithoutEnoughReportsRevertsAtItsDeadline) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  options.min_canary_reports = 2;
  options.canary_deadline = absl::Minutes(30);
  std::unique_ptr<Rollout> rollout = Start(options);
  rollout->Report(canaries_[0], Report(true, 0.9, 0.8));
  clock_.Advance(absl::Minutes(29));
  EXPECT_EQ(Offered(*rollout, others_[0]), 1);
  clock_.Advance(absl::Minutes(2));
  EXPECT_EQ(Offered(*rollout, others_[0]), 3);
  EXPECT_EQ(rollout->status().stage, RolloutStage::kReverted);
  EXPECT_THAT(rollout->status().reason, HasSubstr("only 1 canary report(s) by the deadline"));
}

TEST_F(RolloutTest, ACanaryInProgressSurvivesARestartAndADamagedStateIsIgnored) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  options.min_canary_reports = 2;
  options.state_file = dir_.File("serving/rollout.json");
  {
    std::unique_ptr<Rollout> rollout = Start(options);
    rollout->Report(canaries_[0], Report(true, 0.9, 0.8));
  }
  options.clock = &clock_;
  Rollout restarted(options, catalog_.get());  // the server restarted
  RolloutStatus status = restarted.status();
  EXPECT_EQ(status.stage, RolloutStage::kCanary);
  EXPECT_EQ(status.version, 2);
  EXPECT_EQ(status.previous, 1);
  EXPECT_EQ(status.canary_reports, 1);
  EXPECT_EQ(Offered(restarted, others_[0]), 1);
  restarted.Report(canaries_[0], Report(true, 0.9, 0.8));  // counted before the restart
  EXPECT_EQ(restarted.status().canary_reports, 1);
  restarted.Report(canaries_[1], Report(true, 0.9, 0.8));
  EXPECT_EQ(restarted.status().stage, RolloutStage::kComplete);
  EXPECT_EQ(Offered(restarted, others_[0]), 2);

  ASSERT_TRUE(WriteFileAtomically(options.state_file, "{\"format\": 1, \"version\": 2").ok());
  Rollout damaged(options, catalog_.get());
  EXPECT_EQ(damaged.status().stage, RolloutStage::kComplete);
  EXPECT_EQ(Offered(damaged, others_[0]), 2);
}

TEST_F(RolloutTest, ARollbackByHandGoesToEveryDeviceAtOnce) {
  RolloutOptions options;
  options.canary_fraction = 0.5;
  std::unique_ptr<Rollout> rollout = Start(options);
  ASSERT_TRUE(rollout->Rollback().ok());
  EXPECT_EQ(rollout->status().stage, RolloutStage::kComplete);
  EXPECT_EQ(Offered(*rollout, canaries_[0]), 3);
  EXPECT_EQ(Offered(*rollout, others_[0]), 3);
}

}  // namespace
}  // namespace shoal
