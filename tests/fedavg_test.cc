#include "strategies/fedavg.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "strategies/aggregate.h"
#include "strategies/registry.h"
#include "tests/strategy_testing.h"

namespace shoal {
namespace {

using testing::Global;
using testing::Update;

TEST(FedAvgTest, WeightsByNumExamples) {
  // global w = [1, 2], b = [0.5]
  // client a: n = 1, update w = [ 4, 0], b = [ 1]
  // client b: n = 3, update w = [-4, 8], b = [-1]
  // mean update = (1*a + 3*b) / 4 = w [(4 - 12)/4, (0 + 24)/4] = [-2, 6],
  //                                 b [(1 - 3)/4] = [-0.5]
  // new global  = w [-1, 8], b [0]
  FedAvg fedavg({});
  auto agg = fedavg.BeginAggregateFit(1, Global({1, 2}, {0.5}));
  ASSERT_TRUE(agg->Accept("a", Update({4, 0}, {1}, 1)).ok());
  ASSERT_TRUE(agg->Accept("b", Update({-4, 8}, {-1}, 3)).ok());
  absl::StatusOr<Parameters> next = agg->Finish({});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(at::allclose(next->tensor(0), at::tensor(std::vector<float>{-1, 8})))
      << next->tensor(0);
  EXPECT_TRUE(at::allclose(next->tensor(1), at::tensor(std::vector<float>{0})))
      << next->tensor(1);
  EXPECT_EQ(next->name(0), "w");
}

TEST(FedAvgTest, SingleClientAppliesItsUpdate) {
  FedAvg fedavg({});
  auto agg = fedavg.BeginAggregateFit(1, Global({1, 1}, {1}));
  ASSERT_TRUE(agg->Accept("a", Update({0.25, -1}, {2}, 17)).ok());
  absl::StatusOr<Parameters> next = agg->Finish({});
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(at::allclose(next->tensor(0), at::tensor(std::vector<float>{1.25, 0})));
  EXPECT_TRUE(at::allclose(next->tensor(1), at::tensor(std::vector<float>{3})));
}

TEST(FedAvgTest, ResultOrderDoesNotChangeTheOutcome) {
  std::vector<FitRes> results;
  at::manual_seed(3);
  for (int i = 0; i < 20; ++i) {
    FitRes r;
    r.update.Add("w", at::randn({1000}));
    r.num_examples = 1 + i * 37;
    results.push_back(r);
  }
  auto global = std::make_shared<Parameters>();
  global->Add("w", at::randn({1000}));
  auto run = [&](bool reversed) {
    FedAvg fedavg({});
    auto agg = fedavg.BeginAggregateFit(1, global);
    for (int i = 0; i < 20; ++i) {
      const FitRes& r = results[reversed ? 19 - i : i];
      EXPECT_TRUE(agg->Accept("c", r).ok());
    }
    return *agg->Finish({});
  };
  EXPECT_TRUE(at::equal(run(false).tensor(0), run(true).tensor(0)));
}

// A model with every kind of tensor the fold meets: a float32 tensor large
// enough to be split among threads, float16 and float64 tensors (ATen's
// path), and an integer buffer (not folded).
std::shared_ptr<const Parameters> MixedModel() {
  auto p = std::make_shared<Parameters>();
  p->Add("big", at::zeros({150000}));
  p->Add("grid", at::zeros({40, 30}));
  p->Add("half", at::zeros({100}, at::kHalf));
  p->Add("double", at::zeros({100}, at::kDouble));
  p->Add("steps", at::zeros({1}, at::kLong));
  return p;
}

// RandomResult makes an update for MixedModel of magnitude 10^[-2, 2], with
// "grid" non-contiguous (a transposed view), as a client's could be.
FitRes RandomResult(const at::Generator& gen) {
  const double scale =
      std::pow(10.0, at::empty({1}).uniform_(-2, 2, gen).item<double>());
  FitRes r;
  r.update.Add("big", at::randn({150000}, gen) * scale);
  r.update.Add("grid", (at::randn({30, 40}, gen) * scale).t());
  r.update.Add("half", (at::randn({100}, gen) * scale).to(at::kHalf));
  r.update.Add("double", at::randn({100}, gen, at::kDouble) * scale);
  r.update.Add("steps", at::ones({1}, at::kLong));
  r.num_examples = at::randint(1, 100000, {1}, gen).item<int64_t>();
  return r;
}

// MeanCatcher is a WeightedSumAggregator over MixedModel whose finisher
// keeps the flat float64 mean update in `mean`.
WeightedSumAggregator MeanCatcher(at::Tensor* mean) {
  return WeightedSumAggregator(
      MixedModel(),
      [mean](const Parameters& global, const FlatLayout&,
             const at::Tensor& m) -> absl::StatusOr<Parameters> {
        *mean = m.clone();
        return global;
      });
}

TEST(WeightedSumAggregatorTest, ThousandResultsMatchAFloat64Reference) {
  at::Tensor mean;
  WeightedSumAggregator agg = MeanCatcher(&mean);
  // Reference, computed alongside (results are not kept: 1,000 of them would
  // be 600 MB): each tensor cast to float64 on its own, weighted, summed.
  // `scale` is sum_i w_i |x_i|, the size rounding errors are measured
  // against (a coordinate whose terms cancel has a tiny sum but not a tiny
  // error budget).
  const int kTensors = 4;  // the floating-point ones, in layout order
  std::vector<at::Tensor> sum(kTensors), scale(kTensors);
  double total = 0;
  at::Generator gen = at::detail::createCPUGenerator(/*seed_val=*/11);
  for (int i = 0; i < 1000; ++i) {
    const FitRes r = RandomResult(gen);
    ASSERT_TRUE(agg.Accept("c", r).ok());
    const double w = static_cast<double>(r.num_examples);
    total += w;
    for (int t = 0; t < kTensors; ++t) {
      const at::Tensor x = r.update.tensor(t).to(at::kDouble).reshape({-1});
      sum[t] = sum[t].defined() ? sum[t] + w * x : w * x;
      scale[t] = scale[t].defined() ? scale[t] + w * x.abs() : w * x.abs();
    }
  }
  ASSERT_TRUE(agg.Finish({}).ok());
  const at::Tensor expected = at::cat(sum) / total;
  const at::Tensor error = (mean - expected).abs() / (at::cat(scale) / total);
  // Float64 accumulation measured 1e-16 here. The bar is far below the 1e-6
  // a float32 model needs because plain float32 accumulation measured 5e-7,
  // which a 1e-6 bar would let through.
  EXPECT_LT(error.max().item<double>(), 1e-12);
}

TEST(WeightedSumAggregatorTest, ThreadCountDoesNotChangeTheSum) {
  at::Generator gen = at::detail::createCPUGenerator(/*seed_val=*/12);
  std::vector<FitRes> results;
  for (int i = 0; i < 10; ++i) results.push_back(RandomResult(gen));
  auto fold = [&](int threads) {
    at::set_num_threads(threads);
    at::Tensor mean;
    WeightedSumAggregator agg = MeanCatcher(&mean);
    for (const FitRes& r : results) EXPECT_TRUE(agg.Accept("c", r).ok());
    EXPECT_TRUE(agg.Finish({}).ok());
    return mean;
  };
  const int threads = at::get_num_threads();
  const at::Tensor one = fold(1);
  const at::Tensor two = fold(2);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(FedAvgTest, IntegerBuffersKeepTheirGlobalValue) {
  auto global = std::make_shared<Parameters>();
  global->Add("w", at::zeros({2}));
  global->Add("steps", at::tensor(std::vector<int64_t>{7}));
  FitRes r;
  r.update.Add("w", at::ones({2}));
  r.update.Add("steps", at::tensor(std::vector<int64_t>{100}));
  r.num_examples = 2;
  FedAvg fedavg({});
  auto agg = fedavg.BeginAggregateFit(1, global);
  ASSERT_TRUE(agg->Accept("a", r).ok());
  Parameters next = *agg->Finish({});
  EXPECT_EQ(next.tensor(1).item<int64_t>(), 7);
}

TEST(FedAvgTest, NoResultsIsAnErrorAndNonPositiveExamplesAreRefused) {
  FedAvg fedavg({});
  auto agg = fedavg.BeginAggregateFit(1, Global({1}, {1}));
  EXPECT_FALSE(agg->Accept("a", Update({1}, {1}, 0)).ok());
  absl::StatusOr<Parameters> next = agg->Finish({{"a", absl::DeadlineExceededError("late")}});
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FedAvgTest, ConfigureFitSendsTheConfiguredFitConfigToEveryone) {
  FedAvgOptions options;
  options.fit_config.set_local_epochs(3);
  options.fit_config.set_learning_rate(0.1);
  FedAvg fedavg(options);
  std::vector<FitInstruction> plan = fedavg.ConfigureFit(1, *Global({1}, {1}), {"a", "b"});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[1].client_id, "b");
  EXPECT_EQ(plan[1].config.local_epochs(), 3u);
  EXPECT_DOUBLE_EQ(plan[0].config.learning_rate(), 0.1);
}

TEST(StrategyRegistryTest, UnknownNameAndParameterAreNamed) {
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy("fedsomething", nlohmann::json::object(), StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fedsomething"), std::string::npos);
  EXPECT_NE(s.status().message().find("fedavg"), std::string::npos);
  s = CreateStrategy("fedavg", nlohmann::json{{"mu", 1}}, StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'strategy.mu'"), std::string::npos) << s.status();
  s = CreateStrategy("fedavg", nlohmann::json{{"fraction_evaluate", 1.5}}, StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fraction_evaluate"), std::string::npos);
  EXPECT_TRUE(CreateStrategy("fedavg", nlohmann::json::object(), StrategyContext{}).ok());
}

TEST(FedAvgTest, ConfigureEvaluateAsksTheConfiguredShareOfClients) {
  FedAvgOptions options;
  std::vector<std::string> live = {"a", "b", "c", "d", "e"};
  EXPECT_TRUE(FedAvg(options).ConfigureEvaluate(1, *Global({1}, {1}), live).empty());
  options.fraction_evaluate = 0.5;
  options.min_evaluate_clients = 0;
  std::vector<EvaluateInstruction> plan = FedAvg(options).ConfigureEvaluate(1, *Global({1}, {1}), live);
  EXPECT_EQ(plan.size(), 2u);  // int(2.5), as Flower
  std::vector<EvaluateInstruction> again = FedAvg(options).ConfigureEvaluate(1, *Global({1}, {1}), live);
  for (size_t i = 0; i < plan.size(); ++i) EXPECT_EQ(plan[i].client_id, again[i].client_id);
  options.fraction_evaluate = 1;
  EXPECT_EQ(FedAvg(options).ConfigureEvaluate(2, *Global({1}, {1}), live).size(), 5u);
}

// Flower's published values (flwr/server/strategy/fedavg_test.py,
// test_fedavg_num_evaluation_clients_*): fraction 0.05 and Flower's default
// minimum of 2 ask 2 clients of 40, 39, 20 and 19.
TEST(FedAvgTest, EvaluateSampleSizeMatchesFlowersTestValues) {
  FedAvgOptions options;
  options.fraction_evaluate = 0.05;
  ASSERT_EQ(options.min_evaluate_clients, 2);
  for (size_t live : {40u, 39u, 20u, 19u}) {
    EXPECT_EQ(EvaluateSampleSize(options, live), 2u) << live << " live";
  }
  // Flower's num_fit_clients tests use the same rule with fraction 0.1.
  options.fraction_evaluate = 0.1;
  for (size_t live : {20u, 19u, 10u, 9u}) {
    EXPECT_EQ(EvaluateSampleSize(options, live), 2u) << live << " live";
  }
}

TEST(FedAvgTest, EvaluateSampleSizeTruncatesTheShareLikeFlower) {
  FedAvgOptions options;
  options.min_evaluate_clients = 0;
  // max(int(fraction * n), minimum), worked out by hand: 0.05 * 50 = 2.5
  // -> 2 (rounding up would ask 3); 0.3 * 10 is 3.0000000000000004 in
  // float64 -> 3 (rounding up would ask 4).
  options.fraction_evaluate = 0.05;
  EXPECT_EQ(EvaluateSampleSize(options, 50), 2u);
  EXPECT_EQ(EvaluateSampleSize(options, 100), 5u);
  options.fraction_evaluate = 0.3;
  EXPECT_EQ(EvaluateSampleSize(options, 10), 3u);
  // A share below one client with no minimum asks nobody.
  options.fraction_evaluate = 0.05;
  EXPECT_EQ(EvaluateSampleSize(options, 19), 0u);
  // The minimum applies, capped at the live clients (Flower would sample
  // nobody when fewer than the minimum are available).
  options.min_evaluate_clients = 3;
  EXPECT_EQ(EvaluateSampleSize(options, 19), 3u);
  EXPECT_EQ(EvaluateSampleSize(options, 2), 2u);
  // fraction_evaluate 0 turns federated evaluation off, whatever the minimum.
  options.fraction_evaluate = 0;
  EXPECT_EQ(EvaluateSampleSize(options, 40), 0u);
}

TEST(FedAvgTest, MinEvaluateClientsIsACheckedParameter) {
  absl::StatusOr<std::unique_ptr<Strategy>> s = CreateStrategy(
      "fedavg",
      nlohmann::json{{"fraction_evaluate", 0.05}, {"min_evaluate_clients", 4}},
      StrategyContext{});
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<std::string> live;
  for (int i = 0; i < 20; ++i) live.push_back("c" + std::to_string(i));
  EXPECT_EQ((*s)->ConfigureEvaluate(1, *Global({1}, {1}), live).size(), 4u);
  for (const nlohmann::json& bad :
       {nlohmann::json(-1), nlohmann::json(1.5), nlohmann::json("2")}) {
    s = CreateStrategy("fedavg", nlohmann::json{{"min_evaluate_clients", bad}},
                       StrategyContext{});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("'strategy.min_evaluate_clients'"),
              std::string::npos)
        << s.status();
  }
  // Every strategy built on FedAvg reads it.
  s = CreateStrategy("fedadam", nlohmann::json{{"min_evaluate_clients", 3}},
                     StrategyContext{});
  EXPECT_TRUE(s.ok()) << s.status();
}

// Regression: the total of two INT64_MAX counts overflowed (undefined
// behaviour; in practice a negative total, and the round's evaluation was
// refused). Weights are float64 and the total saturates.
TEST(StrategyTest, AggregateEvaluateSurvivesInt64MaxExampleCounts) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  FedAvg fedavg({});
  EvaluateRes a{kMax, 1.0, {{"accuracy", 0.5}}};
  EvaluateRes b{kMax, 3.0, {{"accuracy", 0.9}}};
  absl::StatusOr<EvaluateRes> res =
      fedavg.AggregateEvaluate(1, {{"a", a}, {"b", b}}, {});
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_DOUBLE_EQ(res->loss, 2.0);
  EXPECT_DOUBLE_EQ(MetricAsDouble(res->metrics.at("accuracy")), 0.7);
  EXPECT_EQ(res->num_examples, kMax);
}

TEST(StrategyTest, AggregateEvaluateWeightsByExamples) {
  FedAvg fedavg({});
  EvaluateRes a{10, 1.0, {{"accuracy", 0.5}}};
  EvaluateRes b{30, 2.0, {{"accuracy", 0.9}}};
  absl::StatusOr<EvaluateRes> res = fedavg.AggregateEvaluate(1, {{"a", a}, {"b", b}}, {});
  ASSERT_TRUE(res.ok());
  EXPECT_DOUBLE_EQ(res->loss, 1.75);
  EXPECT_DOUBLE_EQ(MetricAsDouble(res->metrics.at("accuracy")), 0.8);
  EXPECT_EQ(res->num_examples, 40);
}

// Pooled means come from clients and are not trusted: impossible ones
// (a negative mean square, a variance below zero) yield no RMSE or R²
// rather than NaN, and the pooled entries never reach the round's record.
TEST(StrategyTest, AggregateEvaluateDropsImpossiblePooledMeans) {
  FedAvg fedavg({});
  EvaluateRes a{10, 1.0, {{"rmse", 2.0}, {"pooled.mse", -4.0}}};
  EvaluateRes b{10, 1.0, {{"rmse", 2.0}, {"pooled.mse", -4.0}}};
  absl::StatusOr<EvaluateRes> res = fedavg.AggregateEvaluate(1, {{"a", a}, {"b", b}}, {});
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_DOUBLE_EQ(MetricAsDouble(res->metrics.at("rmse")), 2.0);  // the clients' own
  EXPECT_EQ(res->metrics.count("pooled.mse"), 0u);
  EvaluateRes c{10, 1.0,
                {{"pooled.mse", 1.0}, {"pooled.target_mean", 3.0}, {"pooled.target_sq_mean", 4.0}}};
  res = fedavg.AggregateEvaluate(1, {{"c", c}}, {});
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_DOUBLE_EQ(MetricAsDouble(res->metrics.at("rmse")), 1.0);
  EXPECT_EQ(res->metrics.count("r2"), 0u);  // variance 4 - 9 < 0
  EXPECT_EQ(res->metrics.size(), 1u);
}

}  // namespace
}  // namespace shoal
