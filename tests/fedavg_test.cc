#include "strategies/fedavg.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "tests/strategy_testing.h"
#include "strategies/registry.h"

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
  std::vector<EvaluateInstruction> plan = FedAvg(options).ConfigureEvaluate(1, *Global({1}, {1}), live);
  EXPECT_EQ(plan.size(), 3u);  // ceil(2.5)
  std::vector<EvaluateInstruction> again = FedAvg(options).ConfigureEvaluate(1, *Global({1}, {1}), live);
  for (size_t i = 0; i < plan.size(); ++i) EXPECT_EQ(plan[i].client_id, again[i].client_id);
  options.fraction_evaluate = 1;
  EXPECT_EQ(FedAvg(options).ConfigureEvaluate(2, *Global({1}, {1}), live).size(), 5u);
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

}  // namespace
}  // namespace shoal
