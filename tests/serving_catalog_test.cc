// The server's serving versions (server/serving_catalog.h): promotion signs a
// run's version as the next serving version, which a device's store
// accepts; rollbacks walk back through the lineage; restarts keep it; bad
// requests and damaged files are refused with their names.
#include "server/serving_catalog.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/files.h"
#include "common/sha256.h"
#include "tests/signing_testing.h"

namespace shoal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ServingCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = testing::WriteSigningKeys(dir_, "model-signing");
    other_ = testing::WriteSigningKeys(dir_, "other");
    signer_ = *ModelSigner::Load(keys_.private_key);
    verifier_ = *ModelVerifier::Load(keys_.public_key);
    other_signer_ = *ModelSigner::Load(other_.private_key);
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
  testing::SigningKeyFiles keys_, other_;
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

}  // namespace
}  // namespace shoal
