#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "common/client_algorithms.h"
#include "common/files.h"
#include "common/types.h"
#include "gtest/gtest.h"
#include "strategies/fednova.h"
#include "strategies/fedprox.h"
#include "strategies/registry.h"
#include "tests/strategy_testing.h"

namespace shoal {
namespace {

using nlohmann::json;

at::Tensor FromJson(const json& j) { return testing::TensorFromJson(j).to(at::kFloat); }

TEST(FedNovaTest, MatchesNumPyReference) {
  const json g = json::parse(*ReadFile(std::string(SHOAL_SOURCE_DIR) +
                                      "/tests/golden/fednova_golden.json"));
  auto global = std::make_shared<Parameters>();
  global->Add("w", FromJson(g["global"]["w"]));
  global->Add("b", FromJson(g["global"]["b"]));
  StrategyContext context;
  context.fit_config.set_momentum(g["momentum"].get<double>());
  auto strategy = *CreateStrategy("fednova", json::object(), context);
  EXPECT_FALSE(strategy->AggregatesByMean());  // normalizes each update: no secure rounds
  auto agg = strategy->BeginAggregateFit(1, global);
  for (const json& c : g["clients"]) {
    FitRes res;
    res.update.Add("w", FromJson(c["w"]));
    res.update.Add("b", FromJson(c["b"]));
    res.num_examples = c["num_examples"];
    res.metrics[kStepsMetric] = c["steps"].get<int64_t>();
    ASSERT_TRUE(agg->Accept(c["id"], res).ok());
  }
  absl::StatusOr<Parameters> next = agg->Finish({});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(at::allclose(next->tensor(0), FromJson(g["expected"]["w"]), 1e-5, 1e-6))
      << next->tensor(0) << FromJson(g["expected"]["w"]);
  EXPECT_TRUE(at::allclose(next->tensor(1), FromJson(g["expected"]["b"]), 1e-5, 1e-6));
  for (size_t i = 0; i < g["clients"].size(); ++i) {
    EXPECT_NEAR(EffectiveSteps(g["clients"][i]["steps"], 0.9),
                g["effective_steps"][i].get<double>(), 1e-9);
  }
}

TEST(FedNovaTest, EqualStepsWithoutMomentumIsFedAvg) {
  // a_i = tau for every client: tau_eff * sum p_i u_i / tau = sum p_i u_i.
  auto global = std::make_shared<Parameters>();
  global->Add("w", at::zeros({2}));
  auto strategy = *CreateStrategy("fednova", json::object(), StrategyContext{});
  auto agg = strategy->BeginAggregateFit(1, global);
  FitRes a, b;
  a.update.Add("w", at::tensor(std::vector<float>{1, 0}));
  a.num_examples = 1;
  a.metrics[kStepsMetric] = int64_t{5};
  b.update.Add("w", at::tensor(std::vector<float>{0, 4}));
  b.num_examples = 3;
  b.metrics[kStepsMetric] = int64_t{5};
  ASSERT_TRUE(agg->Accept("a", a).ok());
  ASSERT_TRUE(agg->Accept("b", b).ok());
  EXPECT_TRUE(at::allclose(agg->Finish({})->tensor(0), at::tensor(std::vector<float>{0.25, 3})));
}

TEST(FedNovaTest, ResultWithoutStepCountIsRefused) {
  auto global = std::make_shared<Parameters>();
  global->Add("w", at::zeros({2}));
  auto strategy = *CreateStrategy("fednova", json::object(), StrategyContext{});
  auto agg = strategy->BeginAggregateFit(1, global);
  FitRes res;
  res.update.Add("w", at::ones({2}));
  res.num_examples = 3;
  absl::Status s = agg->Accept("x", res);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'steps'"), std::string::npos) << s;
}

TEST(FedProxTest, SendsMuToEveryClientAndAggregatesLikeFedAvg) {
  StrategyContext context;
  context.fit_config.set_learning_rate(0.1);
  auto strategy = *CreateStrategy("fedprox", json{{"proximal_mu", 0.25}}, context);
  Parameters global;
  global.Add("w", at::zeros({1}));
  std::vector<FitInstruction> plan = strategy->ConfigureFit(1, global, {"a", "b"});
  ASSERT_EQ(plan.size(), 2u);
  for (const FitInstruction& ins : plan) {
    const v1::ClientAlgorithmConfig* fedprox = FindClientAlgorithm(ins.config, kFedProxAlgorithm);
    ASSERT_NE(fedprox, nullptr);
    EXPECT_DOUBLE_EQ(fedprox->params().at(kProximalMuParam).double_value(), 0.25);
    EXPECT_DOUBLE_EQ(ins.config.learning_rate(), 0.1);
  }
  EXPECT_TRUE(strategy->AggregatesByMean());
}

TEST(FedProxTest, NegativeMuAndUnknownParametersAreRefusedBeforeTheRun) {
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy("fedprox", json{{"proximal_mu", -0.1}}, StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("strategy.proximal_mu"), std::string::npos) << s.status();
  s = CreateStrategy("fedprox", json{{"mu", 0.1}}, StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("unknown parameter 'strategy.mu'"), std::string::npos)
      << s.status();
  EXPECT_NE(s.status().message().find("proximal_mu"), std::string::npos);
}

}  // namespace
}  // namespace shoal
