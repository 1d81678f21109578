// DifferentialPrivacy: clipping, noise, adaptive clip norm and accounting
// around mean-based strategies.
#include "strategies/differential_privacy.h"

#include <ATen/ATen.h>

#include <cmath>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/client_algorithms.h"
#include "common/types.h"
#include "gtest/gtest.h"
#include "strategies/registry.h"
#include "tests/strategy_testing.h"

namespace shoal {
namespace {

using ::nlohmann::json;
using Clipping = DifferentialPrivacyOptions::Clipping;

std::unique_ptr<DifferentialPrivacy> Dp(const std::string& inner,
                                        DifferentialPrivacyOptions options,
                                        uint32_t cohort = 2) {
  options.noise_seed = 1;  // reproducible tests
  auto strategy = CreateStrategy(inner, json::object(), StrategyContext{});
  EXPECT_TRUE(strategy.ok()) << strategy.status();
  auto dp = DifferentialPrivacy::Wrap(*std::move(strategy), options, cohort);
  EXPECT_TRUE(dp.ok()) << dp.status();
  return dp.ok() ? *std::move(dp) : nullptr;
}

DifferentialPrivacyOptions NoNoise(Clipping clipping, double clip_norm) {
  DifferentialPrivacyOptions o;
  o.clipping = clipping;
  o.noise_multiplier = 0;
  o.clip_norm = clip_norm;
  return o;
}

TEST(DifferentialPrivacyTest, ServerClipsEachUpdateAndAveragesWithEqualWeights) {
  auto dp = Dp("fedavg", NoNoise(Clipping::kServer, 1.0));
  EXPECT_FALSE(dp->AggregatesByMean());
  auto global = testing::Global({0, 0}, {0});
  dp->ConfigureFit(1, *global, {"a", "b"});
  auto agg = dp->BeginAggregateFit(1, global);
  // a: norm 0.5, kept; b: norm 4, scaled by 1/4. num_examples is ignored.
  ASSERT_TRUE(agg->Accept("a", testing::Update({0.3f, 0.4f}, {0}, 10)).ok());
  ASSERT_TRUE(agg->Accept("b", testing::Update({0, 0}, {4}, 1000)).ok());
  absl::StatusOr<Parameters> next = agg->Finish({});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(at::allclose(next->tensor(0), at::tensor(std::vector<float>{0.15f, 0.2f})));
  EXPECT_TRUE(at::allclose(next->tensor(1), at::tensor(std::vector<float>{0.5f})));
  EXPECT_EQ(agg->RoundMetrics().count("dp_epsilon"), 0u);  // no noise, no guarantee
}

TEST(DifferentialPrivacyTest, NoiseOnTheMeanHasStddevZTimesClipOverM) {
  DifferentialPrivacyOptions o;
  o.noise_multiplier = 2.0;
  o.clip_norm = 0.5;
  auto dp = Dp("fedavg", o, 4);
  auto global = std::make_shared<Parameters>();
  global->Add("w", at::zeros({200000}));
  dp->ConfigureFit(1, *global, {"a", "b", "c", "d"});
  auto agg = dp->BeginAggregateFit(1, global);
  for (const char* id : {"a", "b", "c", "d"}) {
    FitRes res;
    res.update.Add("w", at::zeros({200000}));
    res.num_examples = 1;
    ASSERT_TRUE(agg->Accept(id, res).ok());
  }
  absl::StatusOr<Parameters> next = agg->Finish({});
  ASSERT_TRUE(next.ok()) << next.status();
  const double want = 2.0 * 0.5 / 4;
  EXPECT_NEAR(next->tensor(0).std().item<double>(), want, 0.01 * want);
  EXPECT_NEAR(next->tensor(0).mean().item<double>(), 0, 0.01 * want);
  EXPECT_DOUBLE_EQ(MetricAsDouble(agg->RoundMetrics().at("dp_noise_stddev")), want);
}

TEST(DifferentialPrivacyTest, ClientClippingSendsTheNormAndRefusesLongerUpdates) {
  auto dp = Dp("fedavg", NoNoise(Clipping::kClient, 1.0));
  EXPECT_FALSE(dp->AggregatesByMean());
  auto global = testing::Global({0, 0}, {0});
  std::vector<FitInstruction> plan = dp->ConfigureFit(1, *global, {"a", "b"});
  ASSERT_EQ(plan.size(), 2u);
  const v1::ClientAlgorithmConfig* clip =
      FindClientAlgorithm(plan[1].config, kDifferentialPrivacyAlgorithm);
  ASSERT_NE(clip, nullptr);
  EXPECT_DOUBLE_EQ(clip->params().at(kClipNormParam).double_value(), 1.0);
  auto agg = dp->BeginAggregateFit(1, global);
  absl::Status refused = agg->Accept("cheat", testing::Update({3, 0}, {0}, 1));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("cheat"), std::string::npos) << refused;
  EXPECT_TRUE(agg->Accept("a", testing::Update({0.6f, 0.8f}, {0}, 1)).ok());  // norm 1
}

TEST(DifferentialPrivacyTest, AdaptiveClipNormFollowsTheQuantile) {
  DifferentialPrivacyOptions o = NoNoise(Clipping::kServer, 2.0);
  o.adaptive = true;
  o.clipped_count_stddev = 1e-12;  // effectively exact counts
  auto dp = Dp("fedavg", o);
  auto global = testing::Global({0, 0}, {0});
  dp->ConfigureFit(1, *global, {"a", "b"});
  auto agg = dp->BeginAggregateFit(1, global);
  // Both within C: the fraction is 1 > gamma = 0.5, so C shrinks by
  // exp(-0.2 * 0.5).
  ASSERT_TRUE(agg->Accept("a", testing::Update({1, 0}, {0}, 1)).ok());
  ASSERT_TRUE(agg->Accept("b", testing::Update({0, 1}, {0}, 1)).ok());
  ASSERT_TRUE(agg->Finish({}).ok());
  EXPECT_NEAR(dp->clip_norm(), 2.0 * std::exp(-0.1), 1e-9);
  EXPECT_NEAR(MetricAsDouble(agg->RoundMetrics().at("dp_below_clip_fraction")), 1.0, 1e-9);
}

// With z = 0 nothing is private, so the count of updates within C gets no
// noise by default: C moves exactly by exp(-eta_C * (b - gamma)). Before,
// sigma_b defaulted to cohort / 20 (2 for 40 clients) even then.
TEST(DifferentialPrivacyTest, AdaptiveClippingWithoutNoiseCountsExactly) {
  auto run_round = [](DifferentialPrivacy& dp) {
    auto global = testing::Global({0, 0}, {0});
    std::vector<std::string> ids;
    for (int i = 0; i < 40; ++i) ids.push_back("c" + std::to_string(i));
    dp.ConfigureFit(1, *global, ids);
    auto agg = dp.BeginAggregateFit(1, global);
    // 30 of 40 updates within C = 2 (norm 1), 10 beyond it (norm 3).
    for (int i = 0; i < 40; ++i) {
      const float x = i < 30 ? 1.0f : 3.0f;
      EXPECT_TRUE(agg->Accept(ids[i], testing::Update({x, 0}, {0}, 1)).ok());
    }
    EXPECT_TRUE(agg->Finish({}).ok());
    return MetricAsDouble(agg->RoundMetrics().at("dp_below_clip_fraction"));
  };
  DifferentialPrivacyOptions o = NoNoise(Clipping::kServer, 2.0);
  o.adaptive = true;
  auto dp = Dp("fedavg", o, 40);
  EXPECT_DOUBLE_EQ(run_round(*dp), 0.75);
  // By hand: C = 2 * exp(-0.2 * (0.75 - 0.5)).
  EXPECT_NEAR(dp->clip_norm(), 2.0 * std::exp(-0.05), 1e-12);

  // A sigma_b given explicitly is still applied.
  o.clipped_count_stddev = 5;
  auto noisy = Dp("fedavg", o, 40);
  EXPECT_NE(run_round(*noisy), 0.75);
}

TEST(DifferentialPrivacyTest, AdaptiveNoiseSplitFollowsAndrewEtAl) {
  DifferentialPrivacyOptions o;
  o.adaptive = true;
  o.noise_multiplier = 1.0;
  o.clipped_count_stddev = 5;  // 2 sigma_b = 10
  auto dp = Dp("fedavg", o, 100);
  EXPECT_NEAR(dp->update_noise_multiplier(), 1 / std::sqrt(1 - 1 / 100.0), 1e-12);

  o.clipped_count_stddev = 0.4;  // needs z < 0.8
  auto strategy = *CreateStrategy("fedavg", json::object(), StrategyContext{});
  auto refused = DifferentialPrivacy::Wrap(std::move(strategy), o, 8);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("clipped_count_stddev"), std::string::npos)
      << refused.status();
}

TEST(DifferentialPrivacyTest, EpsilonIsReportedEachRoundAndTheBudgetStopsTheRun) {
  DifferentialPrivacyOptions o;
  o.noise_multiplier = 1.1;
  o.population = 100;
  o.delta = 1e-5;
  auto dp = Dp("fedavg", o, 10);
  auto global = testing::Global({0, 0}, {0});
  std::vector<std::string> cohort;
  for (int i = 0; i < 10; ++i) cohort.push_back("c" + std::to_string(i));
  RdpAccountant reference;
  std::vector<double> epsilons;
  for (uint32_t round = 1; round <= 3; ++round) {
    EXPECT_FALSE(dp->StopReason(round).has_value());
    dp->ConfigureFit(round, *global, cohort);
    auto agg = dp->BeginAggregateFit(round, global);
    for (const std::string& id : cohort) {
      ASSERT_TRUE(agg->Accept(id, testing::Update({0.1f, 0}, {0}, 1)).ok());
    }
    ASSERT_TRUE(agg->Finish({}).ok());
    ASSERT_TRUE(reference.AddSubsampledGaussian(1.1, 0.1, 1).ok());
    const Metrics m = agg->RoundMetrics();
    epsilons.push_back(MetricAsDouble(m.at("dp_epsilon")));
    EXPECT_DOUBLE_EQ(epsilons.back(), reference.GetEpsilon(1e-5)->epsilon);
    EXPECT_DOUBLE_EQ(MetricAsDouble(m.at("dp_sampling_rate")), 0.1);
  }
  EXPECT_LT(epsilons[0], epsilons[1]);
  EXPECT_LT(epsilons[1], epsilons[2]);

  // A budget between the epsilon after 3 and after 4 rounds stops round 4.
  const double after4 = reference.EpsilonAfter(1.1, 0.1, 1, 1e-5)->epsilon;
  o.target_epsilon = (epsilons[2] + after4) / 2;
  auto budgeted = Dp("fedavg", o, 10);
  for (uint32_t round = 1; round <= 3; ++round) {
    ASSERT_FALSE(budgeted->StopReason(round).has_value()) << round;
    budgeted->ConfigureFit(round, *global, cohort);
    auto agg = budgeted->BeginAggregateFit(round, global);
    for (const std::string& id : cohort) {
      ASSERT_TRUE(agg->Accept(id, testing::Update({0.1f, 0}, {0}, 1)).ok());
    }
    ASSERT_TRUE(agg->Finish({}).ok());
  }
  std::optional<std::string> stop = budgeted->StopReason(4);
  ASSERT_TRUE(stop.has_value());
  EXPECT_NE(stop->find("target_epsilon"), std::string::npos) << *stop;
}

// Every registered strategy: a new one that aggregates otherwise than by the
// mean update but forgets to say so (FedAvg::AggregatesByMean) fails here.
TEST(DifferentialPrivacyTest, OnlyMeanBasedStrategiesCanBeWrapped) {
  const std::set<std::string> mean_based = {"fedavg",  "fedprox", "fedavgm",
                                            "fedadam", "fedyogi", "fedadagrad"};
  for (const std::string& name : RegisteredStrategies()) {
    StrategyContext context;
    context.min_fit_clients = 10;
    auto strategy = CreateStrategy(name, json::object(), context);
    ASSERT_TRUE(strategy.ok()) << name << ": " << strategy.status();
    auto wrapped = DifferentialPrivacy::Wrap(*std::move(strategy), {}, 10);
    EXPECT_EQ(wrapped.ok(), mean_based.count(name) == 1) << name;
    if (!wrapped.ok()) {
      EXPECT_NE(wrapped.status().message().find(name), std::string::npos) << wrapped.status();
    }
  }
}

TEST(DifferentialPrivacyTest, ConfigIsCheckedKeyByKey) {
  EXPECT_TRUE(ParseDifferentialPrivacyOptions(
                  json{{"clipping", "client"}, {"noise_multiplier", 1.0}, {"adaptive", true}})
                  .ok());
  auto unknown = ParseDifferentialPrivacyOptions(json{{"noise", 1.0}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("privacy.noise"), std::string::npos)
      << unknown.status();
  auto bad = ParseDifferentialPrivacyOptions(json{{"clip_norm", 0}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("privacy.clip_norm"), std::string::npos);
  EXPECT_FALSE(ParseDifferentialPrivacyOptions(json{{"clipping", "both"}}).ok());
  EXPECT_FALSE(ParseDifferentialPrivacyOptions(json{{"delta", 1}}).ok());
}

}  // namespace
}  // namespace shoal
