// Top-k with error feedback (common/sparsify.h): what is kept, that the
// residual holds exactly what was dropped, round after round, and a decoder
// that refuses every malformed payload.
#include "common/sparsify.h"

#include <ATen/ATen.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

TEST(SparsifyTest, KeepsTheLargestValuesAndTheResidualHoldsExactlyTheRest) {
  const at::Tensor x = at::tensor({0.1f, -5.0f, 0.2f, 3.0f, -0.3f, 0.0f, 4.0f, 0.05f}).view({2, 4});
  at::Tensor residual;
  absl::StatusOr<SparseTensor> s = TopK(x, 0.25, &residual);  // k = 2
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->indices, (std::vector<int64_t>{1, 6}));
  EXPECT_EQ(s->values, (std::vector<float>{-5.0f, 4.0f}));
  absl::StatusOr<at::Tensor> kept = Densify(*s);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_TRUE(at::equal(*kept + residual, x));  // nothing lost, bit for bit
  EXPECT_EQ(SparseBytes(2, 8), 6);   // a half float and a one-byte gap each
  EXPECT_EQ(SparseBytes(10, 10000), 40);  // gaps of ~1000: two bytes
}

TEST(SparsifyTest, ValuesTravelAsHalfFloatsAndTheRoundingStaysBehind) {
  const at::Tensor x = at::tensor({0.1f, 1e5f, -3.3333333f, 0.0f});
  at::Tensor residual;
  absl::StatusOr<SparseTensor> s = TopK(x, 0.5, &residual);  // k = 2
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->indices, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(s->values[0], 65504.0f);  // saturated
  EXPECT_EQ(s->values[1], ToHalfPrecision(-3.3333333f));
  EXPECT_NE(s->values[1], -3.3333333f);
  EXPECT_EQ(residual[1].item<float>(), 1e5f - 65504.0f);
  EXPECT_TRUE(at::equal(*Densify(*s) + residual, x));
}

TEST(SparsifyTest, ErrorFeedbackSendsEverythingInTheEnd) {
  // Round after round, what was sent plus what is held equals everything
  // the device produced (up to float addition order).
  at::manual_seed(3);
  at::Tensor residual;
  at::Tensor produced = at::zeros({1000});
  at::Tensor sent = at::zeros({1000});
  for (int round = 0; round < 20; ++round) {
    const at::Tensor update = at::randn({1000});
    produced += update;
    absl::StatusOr<SparseTensor> s = TopK(update, 0.01, &residual);
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(s->values.size(), 10u);
    sent += *Densify(*s);
    EXPECT_TRUE(at::allclose(sent + residual, produced, 1e-5, 1e-5)) << round;
  }
  EXPECT_FALSE(TopK(at::ones({3}), 0.5, &residual).ok());  // residual of another shape
}

TEST(SparsifyTest, BadInputsAreRefused) {
  at::Tensor residual;
  EXPECT_THAT(TopK(at::ones({4}), 0, &residual).status().message(), HasSubstr("(0, 1]"));
  EXPECT_THAT(TopK(at::ones({4}), 1.5, &residual).status().message(), HasSubstr("(0, 1]"));
  EXPECT_THAT(TopK(at::ones({4}, at::kDouble), 0.5, &residual).status().message(),
              HasSubstr("float32"));
  EXPECT_THAT(TopK(at::tensor({1.0f, INFINITY}), 0.5, &residual).status().message(),
              HasSubstr("value 1"));
  const SparseTensor good{{2, 3}, {0, 4}, {1.0f, 2.0f}};
  auto error = [](SparseTensor s) {
    absl::StatusOr<at::Tensor> t = Densify(s, 1 << 20);
    return t.ok() ? std::string("decoded") : std::string(t.status().message());
  };
  EXPECT_EQ(error(good), "decoded");
  SparseTensor s = good;
  s.indices = {0, 6};
  EXPECT_THAT(error(s), HasSubstr("outside"));
  s.indices = {-1, 2};
  EXPECT_THAT(error(s), HasSubstr("outside"));
  s.indices = {4, 4};
  EXPECT_THAT(error(s), HasSubstr("does not increase"));
  s = good;
  s.values.pop_back();
  EXPECT_THAT(error(s), HasSubstr("2 indices but 1 values"));
  s = good;
  s.values[1] = NAN;
  EXPECT_THAT(error(s), HasSubstr("value 1 is not finite"));
  s = good;
  s.shape = {1 << 20, 1 << 20};
  EXPECT_THAT(error(s), HasSubstr("elements"));
}

}  // namespace
}  // namespace shoal
