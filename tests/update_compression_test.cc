// Compressed updates (common/update_compression.h): the update a server
// rebuilds from each scheme, error feedback across rounds, the bytes they
// take, and every malformed update refused by name with the global model
// untouched.
#include "common/update_compression.h"

#include <ATen/ATen.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

Parameters Model(float shift) {
  at::manual_seed(5);
  Parameters p;
  p.Add("fc.weight", at::randn({64, 32}) + shift);
  p.Add("fc.bias", at::randn({64}) + shift);
  p.Add("bn.num_batches_tracked", at::tensor({int64_t{7}}));
  return p;
}

// An update as Trainer::Fit returns it: small changes, and a counter's.
Parameters Update() {
  at::manual_seed(6);
  Parameters p;
  p.Add("fc.weight", at::randn({64, 32}) * 0.01);
  p.Add("fc.bias", at::randn({64}) * 0.01);
  p.Add("bn.num_batches_tracked", at::tensor({int64_t{2}}));
  return p;
}

TEST(UpdateCompressionTest, EachSchemeRebuildsTheUpdateWithinItsBound) {
  const Parameters global = Model(0);
  const Parameters trained = Update();
  for (Compression kind : {Compression::kNone, Compression::kQuantize8, Compression::kQuantize4,
                           Compression::kTopK}) {
    std::map<std::string, at::Tensor> residuals;
    v1::UpdateProto update;
    ASSERT_TRUE(CompressUpdate(trained, {kind, 64, 0.1}, 1, &residuals, &update).ok());
    absl::StatusOr<Parameters> rebuilt = DecompressUpdate(global, update);
    ASSERT_TRUE(rebuilt.ok()) << CompressionName(kind) << ": " << rebuilt.status();
    ASSERT_TRUE(rebuilt->CheckCompatible(trained).ok());
    EXPECT_TRUE(at::equal(rebuilt->tensor(2), trained.tensor(2)));  // counters in full
    const double err = (rebuilt->tensor(0) - trained.tensor(0)).abs().max().item<double>();
    switch (kind) {
      case Compression::kNone:
        EXPECT_EQ(err, 0);
        break;
      case Compression::kQuantize8:
        EXPECT_LT(err, 0.08 / 255 * 1.01);  // one step of a block's range (< 0.08)
        break;
      case Compression::kQuantize4:
        EXPECT_LT(err, 0.08 / 15 * 1.01);
        break;
      case Compression::kTopK:
        // What was not sent is exactly what the residual holds.
        EXPECT_TRUE(at::allclose(rebuilt->tensor(0) + residuals["fc.weight"], trained.tensor(0),
                                 1e-6, 1e-6));
        break;
    }
  }
}

TEST(UpdateCompressionTest, CompressedUpdatesTakeAFractionOfTheBytes) {
  const Parameters global = Model(0);
  const Parameters trained = Update();
  auto bytes = [&](Compression kind) {
    std::map<std::string, at::Tensor> residuals;
    v1::UpdateProto update;
    EXPECT_TRUE(CompressUpdate(trained, {kind, 256, 0.01}, 1, &residuals, &update).ok());
    // The simulator's estimate is the payload without framing.
    EXPECT_LE(CompressedUploadBytes(global, {kind, 256, 0.01}),
              static_cast<int64_t>(update.ByteSizeLong()));
    EXPECT_GE(CompressedUploadBytes(global, {kind, 256, 0.01}) + 200,
              static_cast<int64_t>(update.ByteSizeLong()));
    return static_cast<double>(update.ByteSizeLong());
  };
  const double none = bytes(Compression::kNone);
  EXPECT_LT(bytes(Compression::kQuantize8) / none, 0.27);
  EXPECT_LT(bytes(Compression::kQuantize4) / none, 0.15);
  EXPECT_LT(bytes(Compression::kTopK) / none, 0.04);
}

TEST(UpdateCompressionTest, AMalformedUpdateIsRefusedByNameAndTheModelIsUntouched) {
  const Parameters global = Model(0);
  const at::Tensor before = global.tensor(0).clone();
  std::map<std::string, at::Tensor> residuals;
  v1::UpdateProto good;
  ASSERT_TRUE(
      CompressUpdate(Update(), {Compression::kQuantize4, 64, 0}, 1, &residuals, &good)
          .ok());
  auto error = [&](const v1::UpdateProto& u) {
    absl::StatusOr<Parameters> p = DecompressUpdate(global, u);
    return p.ok() ? std::string("decoded") : std::string(p.status().message());
  };
  EXPECT_EQ(error(good), "decoded");
  v1::UpdateProto u = good;
  u.mutable_compressed(0)->mutable_quantized()->set_bits(3);
  EXPECT_THAT(error(u), HasSubstr("tensor 'fc.weight': bits is 3"));
  u = good;
  u.mutable_compressed(1)->mutable_quantized()->mutable_codes()->pop_back();
  EXPECT_THAT(error(u), HasSubstr("tensor 'fc.bias': the codes are"));
  u = good;
  u.mutable_compressed(0)->mutable_quantized()->set_scale(0, NAN);
  EXPECT_THAT(error(u), HasSubstr("block 0"));
  u = good;
  u.mutable_compressed(0)->set_shape(0, 65);
  EXPECT_THAT(error(u), HasSubstr("another shape"));
  u = good;
  *u.add_compressed() = good.compressed(0);
  EXPECT_THAT(error(u), HasSubstr("sent twice"));
  u = good;
  u.mutable_compressed()->RemoveLast();
  EXPECT_THAT(error(u), HasSubstr("tensors; the model has 3"));
  u = good;
  u.mutable_compressed(0)->clear_quantized();
  EXPECT_THAT(error(u), HasSubstr("no codec"));
  u = good;
  u.mutable_compressed(1)->set_name("fc.other");
  EXPECT_THAT(error(u), HasSubstr("'fc.bias' is missing"));
  // Sparse: an index out of range, a value that is not finite.
  v1::UpdateProto sparse;
  ASSERT_TRUE(
      CompressUpdate(Update(), {Compression::kTopK, 0, 0.1}, 1, &residuals, &sparse)
          .ok());
  u = sparse;
  u.mutable_compressed(1)->mutable_sparse()->set_gaps(0, 64);
  EXPECT_THAT(error(u), HasSubstr("outside"));
  u = sparse;
  u.mutable_compressed(0)->mutable_sparse()->set_gaps(1, 0);
  EXPECT_THAT(error(u), HasSubstr("does not increase"));
  u = sparse;
  u.mutable_compressed(0)->mutable_sparse()->set_gaps(1, 0xffffffffu);
  EXPECT_THAT(error(u), HasSubstr("outside"));
  u = sparse;
  (*u.mutable_compressed(0)->mutable_sparse()->mutable_values_f16())[0] = '\0';
  (*u.mutable_compressed(0)->mutable_sparse()->mutable_values_f16())[1] = '\x7c';  // +inf
  EXPECT_THAT(error(u), HasSubstr("not finite"));
  u = sparse;
  u.mutable_compressed(0)->mutable_sparse()->mutable_values_f16()->pop_back();
  EXPECT_THAT(error(u), HasSubstr("bytes of half-float values"));
  EXPECT_TRUE(at::equal(global.tensor(0), before));
  // Options are checked before anything is written.
  v1::UpdateProto none;
  EXPECT_FALSE(CompressUpdate(Update(), {Compression::kTopK, 0, 0}, 1, &residuals, &none)
                   .ok());
  EXPECT_FALSE(CompressUpdate(Update(), {Compression::kTopK, 0, 0.1}, 1, nullptr, &none)
                   .ok());
  EXPECT_THAT(std::string(ParseCompression("q2").status().message()), HasSubstr("q8, q4, topk"));
  EXPECT_EQ(*ParseCompression("topk"), Compression::kTopK);
}

TEST(UpdateCompressionTest, AnUploadIsReadCompressedOrInFullWithItsAux) {
  const Parameters global = Model(0);
  Parameters aux;
  aux.Add("c", at::ones({3}));
  for (Compression kind : {Compression::kNone, Compression::kQuantize8}) {
    v1::UpdateProto wire;
    ASSERT_TRUE(CompressUpdate(Update(), {kind, 64, 0.1}, 1, nullptr, &wire).ok());
    TensorToProto("c", aux.tensor(0), wire.add_aux());
    Parameters update, got_aux;
    ASSERT_TRUE(ParseFitUpload(wire.SerializeAsString(), global, &update, &got_aux).ok());
    EXPECT_TRUE(update.CheckCompatible(global).ok()) << CompressionName(kind);
    ASSERT_EQ(got_aux.size(), 1u);
    EXPECT_TRUE(at::equal(got_aux.tensor(0), aux.tensor(0)));
  }
  Parameters update, got_aux;
  const absl::Status bad = ParseFitUpload("\xff\xff", global, &update, &got_aux);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("not a valid UpdateProto"));
}

}  // namespace
}  // namespace shoal
