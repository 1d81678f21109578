#include "server/model_store.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "common/chunking.h"
#include "common/files.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal {
namespace {

Parameters Weights(float v) {
  Parameters p;
  p.Add("w", at::full({3, 3}, v));
  return p;
}

TEST(ModelStoreTest, EachVersionIsStoredWithMetricsAndChecksum) {
  testing::TempDir dir;
  auto store = *ModelStore::Open(dir.path(), "cnn");
  ASSERT_TRUE(store->Save(0, Weights(0), {}).ok());
  absl::StatusOr<ModelRecord> r1 = store->Save(1, Weights(1), {{"test_accuracy", 0.5}});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->sha256_hex.size(), 64u);

  ModelRecord latest;
  absl::StatusOr<Parameters> loaded = LoadModelParameters(dir.path(), &latest);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(latest.version, 1);
  EXPECT_EQ(latest.model_spec, "cnn");
  EXPECT_DOUBLE_EQ(MetricAsDouble(latest.metrics.at("test_accuracy")), 0.5);
  EXPECT_TRUE(at::equal(loaded->tensor(0), at::full({3, 3}, 1.0f)));

  ModelRecord initial;
  absl::StatusOr<Parameters> v0 = LoadModelParameters(dir.path(), &initial, 0);
  ASSERT_TRUE(v0.ok()) << v0.status();
  EXPECT_EQ(initial.version, 0);
  EXPECT_TRUE(at::equal(v0->tensor(0), at::zeros({3, 3})));
}

TEST(ModelStoreTest, PayloadServesTheNewestFromMemoryAndOlderFromDisk) {
  testing::TempDir dir;
  auto store = *ModelStore::Open(dir.path(), "cnn");
  EXPECT_EQ(store->Payload(kLatestVersion).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->Save(0, Weights(0), {}).ok());
  ASSERT_TRUE(store->Save(1, Weights(1), {}).ok());
  auto first = [](const std::shared_ptr<const ChunkedPayload>& p) {
    return ParseParameters(p->payload())->tensor(0)[0][0].item<float>();
  };
  EXPECT_EQ(first(*store->Payload(kLatestVersion)), 1.0f);
  EXPECT_EQ(first(*store->Payload(1)), 1.0f);
  EXPECT_EQ(first(*store->Payload(0)), 0.0f);  // from disk
  EXPECT_EQ(store->Payload(7).status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelStoreTest, TamperedModelFileIsRefused) {
  testing::TempDir dir;
  auto store = *ModelStore::Open(dir.path(), "cnn");
  absl::StatusOr<ModelRecord> r = store->Save(3, Weights(2), {});
  ASSERT_TRUE(r.ok());
  const std::string path = dir.path() + "/" + r->params_file;
  std::string bytes = *ReadFile(path);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  absl::StatusOr<Parameters> loaded = LoadModelParameters(dir.path());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find("SHA-256"), std::string::npos);
}

TEST(ModelStoreTest, MissingOrMalformedManifestIsAClearError) {
  testing::TempDir dir;
  absl::StatusOr<Parameters> none = LoadModelParameters(dir.path());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/latest.json", "{\"version\": ").ok());
  absl::StatusOr<Parameters> bad = LoadModelParameters(dir.path());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/latest.json",
                                  R"({"version": 1, "sha256": "x", "size_bytes": 1,
                                      "model": "cnn", "params_file": "../../etc/passwd"})")
                  .ok());
  absl::StatusOr<Parameters> escape = LoadModelParameters(dir.path());
  ASSERT_FALSE(escape.ok());
  EXPECT_NE(escape.status().message().find("invalid params file"), std::string::npos);
}

// Found writing fuzz/model_dir_fuzzer (its UBSan build flags the seed
// regression-float-version): nlohmann's get<int64_t>() casts a float, which
// is undefined behaviour for 1e300, so a version or size that is not a
// non-negative integer is refused as malformed.
TEST(ModelDirTest, ManifestVersionAndSizeMustBeNonNegativeIntegers) {
  const std::string rest = R"("sha256": "x", "model": "cnn", "params_file": "m.params")";
  for (const std::string& fields :
       {std::string(R"("version": 1e300, "size_bytes": 1)"),
        std::string(R"("version": 1.5, "size_bytes": 1)"),
        std::string(R"("version": -2, "size_bytes": 1)"),
        std::string(R"("version": 18446744073709551615, "size_bytes": 1)"),
        std::string(R"("version": 1, "size_bytes": -1.5e30)"),
        std::string(R"("version": 1, "size_bytes": "12")")}) {
    absl::StatusOr<ModelRecord> r = ParseModelRecord("{" + fields + ", " + rest + "}", "m.json");
    ASSERT_FALSE(r.ok()) << fields;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << fields;
    EXPECT_NE(r.status().message().find("m.json"), std::string::npos) << r.status();
  }
  absl::StatusOr<ModelRecord> ok =
      ParseModelRecord(R"({"version": 7, "size_bytes": 12, )" + rest + "}", "m.json");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->version, 7);
  EXPECT_EQ(ok->size_bytes, 12u);
}

// Issue 14: a client whose state directory held a manifest nesting 100,000
// levels crashed at every start (the agent loads its cached model in its
// constructor).
TEST(ModelDirTest, DeeplyNestedManifestIsDataLossNotACrash) {
  testing::TempDir dir;
  const std::string deep = R"({"version": )" + std::string(100000, '[') +
                           std::string(100000, ']') + R"(, "sha256": "x"})";
  ASSERT_TRUE(WriteFileAtomically(dir.File("latest.json"), deep).ok());
  absl::StatusOr<Parameters> loaded = LoadModelParameters(dir.path());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  EXPECT_NE(loaded.status().message().find("nests deeper than"), std::string::npos);
  EXPECT_NE(loaded.status().message().find(dir.File("latest.json")), std::string::npos);
  // A wrong type is named, not echoed.
  absl::StatusOr<ModelRecord> r = ParseModelRecord(
      R"({"version": [")" + std::string(100000, 'v') + R"("], "size_bytes": 1})", "m.json");
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 200u) << r.status().message().substr(0, 300);
}

// WriteVersions stores model versions `versions` in `dir`, each with its
// own weights.
void WriteVersions(const std::string& dir, std::initializer_list<int64_t> versions) {
  for (int64_t v : versions) {
    ModelRecord r;
    r.version = v;
    ASSERT_TRUE(WriteModelVersion(dir, r, SerializeParameters(Weights(v))).ok());
  }
}

TEST(ModelDirTest, RemoveModelVersionsBeforeKeepsOnlyNewerVersions) {
  testing::TempDir dir;
  WriteVersions(dir.path(), {0, 3, 7});
  ASSERT_TRUE(WriteFileAtomically(dir.File("notes.txt"), "keep me").ok());
  RemoveModelVersionsBefore(dir.path(), 7);
  EXPECT_FALSE(ReadModelRecord(dir.path(), 0).ok());
  EXPECT_FALSE(ReadModelRecord(dir.path(), 3).ok());
  EXPECT_TRUE(LoadModelParameters(dir.path(), nullptr, 7).ok());
  EXPECT_TRUE(LoadModelParameters(dir.path()).ok());  // latest.json stays
  EXPECT_TRUE(ReadFile(dir.File("notes.txt")).ok());
}

TEST(ModelDirTest, RemoveModelVersionsAfterKeepsOnlyOlderVersionsAndNamesWhatWent) {
  testing::TempDir dir;
  WriteVersions(dir.path(), {0, 3, 7});
  std::vector<std::string> removed = RemoveModelVersionsAfter(dir.path(), 3);
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"model-000007.json", "model-000007.params"}));
  EXPECT_TRUE(LoadModelParameters(dir.path(), nullptr, 0).ok());
  EXPECT_TRUE(LoadModelParameters(dir.path(), nullptr, 3).ok());
  EXPECT_FALSE(ReadModelRecord(dir.path(), 7).ok());
}

}  // namespace
}  // namespace shoal
