// Fixed-point encoding for secure aggregation: the decoded sum stays within
// the stated bound of the clipped sum, rounding is unbiased, and sums that
// could wrap are refused.
#include "secagg/encoding.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "secagg/crypto.h"

namespace shoal::secagg {
namespace {

using ::testing::HasSubstr;

std::string Seed(int i) { return std::string(kKeySize, static_cast<char>(i)); }

TEST(EncodingTest, DecodedSumIsWithinTheBound) {
  EncodingOptions options;  // clip 1, 16 bits, 2^40
  constexpr int kClients = 200;
  constexpr size_t kDim = 1000;
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0, 0.5f);  // some values get clipped
  std::vector<double> clipped_sum(kDim, 0);
  std::vector<uint64_t> code_sum(kDim, 0);
  for (int c = 0; c < kClients; ++c) {
    std::vector<float> v(kDim);
    for (float& x : v) x = normal(rng);
    absl::StatusOr<std::vector<uint64_t>> codes = Encode(v.data(), kDim, options, Seed(c));
    ASSERT_TRUE(codes.ok()) << codes.status();
    for (size_t i = 0; i < kDim; ++i) {
      ASSERT_LE((*codes)[i], (uint64_t{1} << 16) - 1);
      clipped_sum[i] += std::clamp(static_cast<double>(v[i]), -1.0, 1.0);
      code_sum[i] = (code_sum[i] + (*codes)[i]) % options.modulus;
    }
  }
  absl::StatusOr<std::vector<double>> sum = DecodeSum(code_sum, kClients, options);
  ASSERT_TRUE(sum.ok()) << sum.status();
  const double bound = kClients * options.Step();
  double worst = 0;
  for (size_t i = 0; i < kDim; ++i) worst = std::max(worst, std::abs((*sum)[i] - clipped_sum[i]));
  EXPECT_LT(worst, bound);
  // Unbiased rounding: errors cancel, so the typical error is ~sqrt(n) steps,
  // far below the worst-case n steps.
  EXPECT_LT(worst, bound / 4);
}

TEST(EncodingTest, StochasticRoundingIsUnbiased) {
  EncodingOptions options;
  options.bits = 4;  // coarse: step 2/15
  const float x = 0.3f;
  double total = 0;
  constexpr int kTrials = 20000;
  for (int t = 0; t < kTrials; ++t) {
    std::string seed(kKeySize, '\0');
    for (int b = 0; b < 4; ++b) seed[b] = static_cast<char>((t >> (8 * b)) & 0xff);
    absl::StatusOr<std::vector<uint64_t>> code = Encode(&x, 1, options, seed);
    ASSERT_TRUE(code.ok());
    total += static_cast<double>((*code)[0]) * options.Step() - options.clip;
  }
  EXPECT_NEAR(total / kTrials, 0.3, 0.005);
}

TEST(EncodingTest, SumsThatCouldWrapAndBadInputAreRefused) {
  EncodingOptions options;
  options.bits = 8;
  options.modulus = 1000;  // 3 clients of codes up to 255 fit, 4 do not
  EXPECT_EQ(options.MaxClients(), 3u);
  EXPECT_TRUE(DecodeSum({10}, 3, options).ok());
  EXPECT_THAT(std::string(DecodeSum({10}, 4, options).status().message()),
              HasSubstr("holds at most 3"));
  EXPECT_FALSE(DecodeSum({1000}, 1, options).ok());

  const float nan = std::nanf("");
  EXPECT_THAT(std::string(Encode(&nan, 1, options, Seed(1)).status().message()),
              HasSubstr("not finite"));
  EncodingOptions bad;
  bad.clip = 0;
  EXPECT_THAT(std::string(bad.Validate().message()), HasSubstr("clip"));
  bad = {};
  bad.bits = 33;
  EXPECT_THAT(std::string(bad.Validate().message()), HasSubstr("bits"));
  bad = {};
  bad.modulus = 100;  // below one client's 16-bit codes
  EXPECT_THAT(std::string(bad.Validate().message()), HasSubstr("modulus"));
  EXPECT_FALSE(Encode(&nan, 1, EncodingOptions{}, "short seed").ok());
}

}  // namespace
}  // namespace shoal::secagg
