// Quantization (common/quantize.h): the bound on each value's error, the
// unbiasedness of stochastic rounding, exact constant blocks, the sizes,
// and a decoder that refuses every malformed payload.
#include "common/quantize.h"

#include <ATen/ATen.h>

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

TEST(QuantizeTest, EachValueIsWithinOneStepOfItsBlock) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({37, 29}) * 3;  // 1073 values: a short last block
  for (int bits : {8, 4}) {
    for (int64_t block : {1, 64, 256, 5000}) {
      absl::StatusOr<QuantizedTensor> q = Quantize(x, {bits, block}, 7);
      ASSERT_TRUE(q.ok()) << q.status();
      absl::StatusOr<at::Tensor> back = Dequantize(*q);
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_EQ(back->sizes(), x.sizes());
      const at::Tensor err = (*back - x).abs().view({-1});
      const float* e = err.data_ptr<float>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float step = q->scale[static_cast<size_t>(i / block)];
        ASSERT_LE(e[i], step * (1 + 1e-5f) + 1e-6f) << bits << " bits, block " << block;
      }
      EXPECT_EQ(static_cast<int64_t>(q->codes.size() + 8 * q->lo.size()),
                QuantizedBytes(x.numel(), {bits, block}));
    }
  }
  // With blocks of 256: a quarter and an eighth of float32, plus scales.
  EXPECT_NEAR(QuantizedBytes(1 << 20, {8, 256}) / (4.0 * (1 << 20)), 0.2578, 1e-3);
  EXPECT_NEAR(QuantizedBytes(1 << 20, {4, 256}) / (4.0 * (1 << 20)), 0.1328, 1e-3);
}

TEST(QuantizeTest, StochasticRoundingIsUnbiased) {
  // Values between two levels: the mean over many seeds is the value, not
  // the nearest level (which round-to-nearest would give every time).
  const at::Tensor x = at::tensor({0.0f, 0.3f, 1.0f / 3, 0.71f, 1.0f});
  for (int bits : {8, 4}) {
    at::Tensor sum = at::zeros({5}, at::kDouble);
    const int kDraws = 20000;
    for (int s = 0; s < kDraws; ++s) {
      sum += Dequantize(*Quantize(x, {bits, 8}, static_cast<uint64_t>(s)))->to(at::kDouble);
    }
    const at::Tensor mean = sum / kDraws;
    const double step = 1.0 / ((1 << bits) - 1);
    for (int64_t i = 0; i < 5; ++i) {
      // Standard error of the mean <= step / (2 sqrt(draws)); 5 of them.
      EXPECT_NEAR(mean[i].item<double>(), x[i].item<float>(), 5 * step / (2 * std::sqrt(kDraws)))
          << bits << " bits, value " << i;
    }
  }
  // The same seed gives the same codes.
  EXPECT_EQ(Quantize(x, {4, 8}, 3)->codes, Quantize(x, {4, 8}, 3)->codes);
}

TEST(QuantizeTest, ConstantBlocksAndEmptyTensorsAreExact) {
  const at::Tensor x = at::full({300}, 2.5f);
  absl::StatusOr<QuantizedTensor> q = Quantize(x, {4, 256}, 1);
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(at::equal(*Dequantize(*q), x));
  const at::Tensor empty = at::zeros({0, 4});
  absl::StatusOr<at::Tensor> back = Dequantize(*Quantize(empty, {8, 256}, 1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->sizes(), empty.sizes());
}

TEST(QuantizeTest, BadInputsAndOptionsAreRefusedByName) {
  auto error = [](const at::Tensor& x, QuantizeOptions o) {
    absl::StatusOr<QuantizedTensor> q = Quantize(x, o, 1);
    return q.ok() ? std::string("quantized") : std::string(q.status().message());
  };
  EXPECT_THAT(error(at::ones({4}), {3, 256}), HasSubstr("8 or 4"));
  EXPECT_THAT(error(at::ones({4}), {8, 0}), HasSubstr("block"));
  EXPECT_THAT(error(at::ones({4}, at::kDouble), {8, 256}), HasSubstr("float32"));
  EXPECT_THAT(error(at::tensor({1.0f, NAN}), {8, 256}), HasSubstr("value 1 is not finite"));
  // The widest finite range still decodes to finite values.
  const at::Tensor wide = at::tensor({-3.4e38f, 0.0f, 3.4e38f});
  absl::StatusOr<at::Tensor> back = Dequantize(*Quantize(wide, {4, 256}, 1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::isfinite(*back).all().item<bool>());
}

TEST(QuantizeTest, AMalformedPayloadIsRefusedBeforeAnythingIsRead) {
  const QuantizedTensor good = *Quantize(at::randn({10, 10}), {4, 16}, 1);
  auto error = [](QuantizedTensor q) {
    absl::StatusOr<at::Tensor> t = Dequantize(q, /*max_elements=*/1 << 20);
    return t.ok() ? std::string("decoded") : std::string(t.status().message());
  };
  EXPECT_EQ(error(good), "decoded");
  QuantizedTensor q = good;
  q.bits = 2;
  EXPECT_THAT(error(q), HasSubstr("8 or 4"));
  q = good;
  q.block = -1;
  EXPECT_THAT(error(q), HasSubstr("block"));
  q = good;
  q.shape = {-1, 10};
  EXPECT_THAT(error(q), HasSubstr("negative"));
  q = good;
  q.shape = {1 << 20, 1 << 20};
  EXPECT_THAT(error(q), HasSubstr("elements"));
  q = good;
  q.scale.pop_back();
  EXPECT_THAT(error(q), HasSubstr("blocks"));
  q = good;
  q.codes.push_back('x');
  EXPECT_THAT(error(q), HasSubstr("codes"));
  q = good;
  q.scale[2] = NAN;
  EXPECT_THAT(error(q), HasSubstr("block 2"));
  q = good;
  q.scale[0] = -1;
  EXPECT_THAT(error(q), HasSubstr("negative scale"));
  q = good;
  q.lo[6] = INFINITY;
  EXPECT_THAT(error(q), HasSubstr("block 6"));
  q = good;
  q.lo[3] = 3e38f;
  q.scale[3] = 1e37f;
  EXPECT_THAT(error(q), HasSubstr("block 3 would decode to values beyond float32"));
}

}  // namespace
}  // namespace shoal
