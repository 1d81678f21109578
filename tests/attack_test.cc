#include "bench/attack.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::bench {
namespace {

using ::testing::HasSubstr;

// An honest result: update w = [1, -2, 0.5], b = [[3]], 100 examples.
FitRes Honest() {
  FitRes res;
  res.update.Add("w", at::tensor({1.0f, -2.0f, 0.5f}));
  res.update.Add("b", at::full({1, 1}, 3.0f));
  res.num_examples = 100;
  res.metrics["train_loss"] = 0.25;
  res.metrics["steps"] = int64_t{4};
  return res;
}

AttackOptions Options(AttackMode mode, double scale, uint64_t seed = 7) {
  AttackOptions options;
  options.mode = mode;
  options.scale = scale;
  options.seed = seed;
  return options;
}

TEST(AttackTest, ParsesEveryModeAndNamesABadOne) {
  EXPECT_EQ(*ParseAttackMode("none"), AttackMode::kNone);
  EXPECT_EQ(*ParseAttackMode("sign_flip"), AttackMode::kSignFlip);
  EXPECT_EQ(*ParseAttackMode("noise"), AttackMode::kNoise);
  for (AttackMode m :
       {AttackMode::kNone, AttackMode::kSignFlip, AttackMode::kNoise}) {
    EXPECT_EQ(*ParseAttackMode(AttackModeName(m)), m);
  }
  absl::StatusOr<AttackMode> bad = ParseAttackMode("signflip");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'signflip'"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("sign_flip"));
}

TEST(AttackTest, ScaleDefaultsToTheModesAndMustBePositiveAndFinite) {
  absl::StatusOr<AttackOptions> flip =
      ParseAttackOptions("sign_flip", std::nullopt, 3);
  ASSERT_TRUE(flip.ok()) << flip.status();
  EXPECT_EQ(flip->mode, AttackMode::kSignFlip);
  EXPECT_EQ(flip->scale, 10);
  EXPECT_EQ(flip->seed, 3u);
  EXPECT_EQ(ParseAttackOptions("noise", std::nullopt, 0)->scale, 1);
  EXPECT_EQ(ParseAttackOptions("noise", 0.5, 0)->scale, 0.5);

  for (double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    absl::StatusOr<AttackOptions> o = ParseAttackOptions("sign_flip", bad, 0);
    ASSERT_FALSE(o.ok()) << bad;
    EXPECT_THAT(std::string(o.status().message()), HasSubstr("attack scale"));
  }
  EXPECT_THAT(
      std::string(ParseAttackOptions("flip", 1.0, 0).status().message()),
      HasSubstr("'flip'"));
}

TEST(AttackTest, NoneLeavesTheHonestUpdate) {
  FitRes res = Honest();
  ASSERT_TRUE(ApplyAttack(Options(AttackMode::kNone, 1), 1, &res).ok());
  EXPECT_TRUE(at::equal(res.update.tensor(0), at::tensor({1.0f, -2.0f, 0.5f})));
  EXPECT_TRUE(at::equal(res.update.tensor(1), at::full({1, 1}, 3.0f)));
}

TEST(AttackTest, SignFlipNegatesAndScalesEveryTensor) {
  FitRes res = Honest();
  ASSERT_TRUE(ApplyAttack(Options(AttackMode::kSignFlip, 10), 1, &res).ok());
  ASSERT_EQ(res.update.size(), 2u);
  EXPECT_EQ(res.update.name(0), "w");
  EXPECT_EQ(res.update.name(1), "b");
  // -10 * [1, -2, 0.5] and -10 * [[3]], by hand.
  EXPECT_TRUE(
      at::equal(res.update.tensor(0), at::tensor({-10.0f, 20.0f, -5.0f})));
  EXPECT_TRUE(at::equal(res.update.tensor(1), at::full({1, 1}, -30.0f)));
  EXPECT_EQ(res.update.tensor(0).scalar_type(), at::kFloat);
}

TEST(AttackTest, ClaimsTheHonestSizeAndMetrics) {
  for (AttackMode mode : {AttackMode::kSignFlip, AttackMode::kNoise}) {
    FitRes res = Honest();
    ASSERT_TRUE(ApplyAttack(Options(mode, 2), 1, &res).ok());
    EXPECT_EQ(res.num_examples, 100);
    EXPECT_EQ(MetricAsDouble(res.metrics.at("train_loss")), 0.25);
    EXPECT_EQ(MetricAsDouble(res.metrics.at("steps")), 4);
  }
}

TEST(AttackTest, NoiseHasTheUpdatesShapesAndTheGivenSpread) {
  FitRes res;
  res.update.Add("big", at::zeros({400, 500}));
  res.update.Add("small", at::zeros({3}));
  res.num_examples = 1;
  ASSERT_TRUE(ApplyAttack(Options(AttackMode::kNoise, 0.5), 1, &res).ok());
  ASSERT_EQ(res.update.size(), 2u);
  EXPECT_EQ(res.update.tensor(0).sizes(), (at::IntArrayRef{400, 500}));
  EXPECT_EQ(res.update.tensor(1).sizes(), (at::IntArrayRef{3}));
  EXPECT_EQ(res.update.tensor(0).scalar_type(), at::kFloat);
  // 200,000 draws of N(0, 0.25): the sample mean is within 4 standard errors
  // (4 * 0.5 / sqrt(2e5) = 0.0045) of 0, the sample deviation within 1% of 0.5.
  const at::Tensor big = res.update.tensor(0).to(at::kDouble);
  EXPECT_NEAR(big.mean().item<double>(), 0.0, 0.0045);
  EXPECT_NEAR(big.std().item<double>(), 0.5, 0.005);
}

TEST(AttackTest, NoiseIsReproducibleFromSeedAndRound) {
  auto noise = [](uint64_t seed, uint32_t round) {
    FitRes res = Honest();
    EXPECT_TRUE(
        ApplyAttack(Options(AttackMode::kNoise, 1, seed), round, &res).ok());
    return res.update.tensor(0);
  };
  EXPECT_TRUE(at::equal(noise(7, 3), noise(7, 3)));
  EXPECT_FALSE(at::equal(noise(7, 3), noise(7, 4)));  // a new draw each round
  EXPECT_FALSE(at::equal(noise(7, 3), noise(8, 3)));  // and for each client
}

TEST(AttackTest, RefusesBadOptionsAndLeavesTheUpdateAlone) {
  FitRes res = Honest();
  absl::Status s = ApplyAttack(Options(AttackMode::kSignFlip, -1), 1, &res);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(at::equal(res.update.tensor(0), at::tensor({1.0f, -2.0f, 0.5f})));

  FitRes ints;
  ints.update.Add("w", at::tensor({1.0f}));
  ints.update.Add("count", at::tensor({int64_t{5}}));
  s = ApplyAttack(Options(AttackMode::kNoise, 1), 1, &ints);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("'count'"));
  EXPECT_TRUE(at::equal(ints.update.tensor(0), at::tensor({1.0f})));
}

}  // namespace
}  // namespace shoal::bench
