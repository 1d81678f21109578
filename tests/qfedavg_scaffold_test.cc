// q-FedAvg and SCAFFOLD's server side against NumPy golden values
// (tests/golden/qfedavg_scaffold_golden.py), and their contracts with clients.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "common/client_algorithms.h"
#include "common/types.h"
#include "gtest/gtest.h"
#include "strategies/registry.h"
#include "strategies/scaffold.h"
#include "tests/strategy_testing.h"

namespace shoal {
namespace {

using ::nlohmann::json;
using ::shoal::testing::ParametersFromJson;
using ::shoal::testing::ReadGolden;

void ExpectNear(const Parameters& got, const json& want) {
  const Parameters expected = ParametersFromJson(want, at::kDouble);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(at::allclose(got.tensor(i).to(at::kDouble), expected.tensor(i), 1e-5, 1e-6))
        << got.name(i) << ":\n" << got.tensor(i) << "\nwant\n" << expected.tensor(i);
  }
}

TEST(QFedAvgTest, MatchesNumPyReference) {
  const json g = ReadGolden("qfedavg_scaffold_golden.json")["qfedavg"];
  auto strategy = *CreateStrategy(
      "qfedavg", json{{"q", g["q"]}, {"qffl_learning_rate", g["qffl_learning_rate"]}},
      StrategyContext{});
  EXPECT_FALSE(strategy->AggregatesByMean());  // folds its own sums: no secure rounds
  auto global = std::make_shared<Parameters>(ParametersFromJson(g["global"]));
  auto agg = strategy->BeginAggregateFit(1, global);
  for (const json& c : g["clients"]) {
    FitRes res;
    res.update = ParametersFromJson(c["update"]);
    res.num_examples = c["num_examples"];
    res.metrics[kInitialLossMetric] = c["initial_loss"].get<double>();
    ASSERT_TRUE(agg->Accept(c["id"], res).ok());
  }
  absl::StatusOr<Parameters> next = agg->Finish({});
  ASSERT_TRUE(next.ok()) << next.status();
  ExpectNear(*next, g["expected"]);
}

TEST(QFedAvgTest, AsksClientsForTheirInitialLoss) {
  auto strategy = *CreateStrategy("qfedavg", json::object(), StrategyContext{});
  Parameters global = ParametersFromJson(json{{"w", {1.0}}, {"b", {2.0}}});
  std::vector<FitInstruction> plan = strategy->ConfigureFit(1, global, {"a", "b"});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_NE(FindClientAlgorithm(plan[0].config, kQFedAvgAlgorithm), nullptr);
}

TEST(QFedAvgTest, ResultWithoutInitialLossIsRefused) {
  auto strategy = *CreateStrategy("qfedavg", json::object(), StrategyContext{});
  auto global = testing::Global({0, 0}, {0});
  auto agg = strategy->BeginAggregateFit(1, global);
  absl::Status refused = agg->Accept("c7", testing::Update({1, 1}, {1}, 10));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("c7"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find(kInitialLossMetric), std::string::npos) << refused;
}

TEST(QFedAvgTest, BadParametersAreRefused) {
  EXPECT_FALSE(CreateStrategy("qfedavg", json{{"q", -1}}, StrategyContext{}).ok());
  EXPECT_FALSE(
      CreateStrategy("qfedavg", json{{"qffl_learning_rate", 0}}, StrategyContext{}).ok());
}

TEST(ScaffoldTest, TwoRoundsMatchNumPyReference) {
  const json g = ReadGolden("qfedavg_scaffold_golden.json")["scaffold"];
  auto made = CreateStrategy(
      "scaffold",
      json{{"server_learning_rate", g["server_learning_rate"]}, {"population", g["population"]}},
      StrategyContext{});
  ASSERT_TRUE(made.ok()) << made.status();
  auto* scaffold = dynamic_cast<Scaffold*>(made->get());
  ASSERT_NE(scaffold, nullptr);
  auto global = std::make_shared<const Parameters>(ParametersFromJson(g["global"]));
  uint32_t round = 1;
  for (const json& r : g["rounds"]) {
    std::vector<std::string> ids;
    for (const json& res : r["results"]) ids.push_back(res["id"]);
    std::vector<FitInstruction> plan = scaffold->ConfigureFit(round, *global, ids);
    ASSERT_EQ(plan.size(), ids.size());
    // Every client gets the server's control variate, as one shared object.
    ASSERT_NE(plan[0].aux, nullptr);
    EXPECT_EQ(plan[0].aux, plan.back().aux);
    EXPECT_NE(FindClientAlgorithm(plan[0].config, kScaffoldAlgorithm), nullptr);
    ExpectNear(*plan[0].aux, r["control_in"]);

    auto agg = scaffold->BeginAggregateFit(round, global);
    for (const json& res : r["results"]) {
      FitRes fit;
      fit.update = ParametersFromJson(res["dy"]);
      fit.aux = ParametersFromJson(res["dc"]);
      fit.num_examples = res["num_examples"];
      ASSERT_TRUE(agg->Accept(res["id"], fit).ok());
    }
    absl::StatusOr<Parameters> next = agg->Finish({});
    ASSERT_TRUE(next.ok()) << next.status();
    ExpectNear(*next, r["expected_global"]);
    ExpectNear(*scaffold->control(), r["expected_control"]);
    global = std::make_shared<const Parameters>(*std::move(next));
    ++round;
  }
}

TEST(ScaffoldTest, ResultWithoutControlVariateIsRefusedAndStateKept) {
  auto strategy = *CreateStrategy("scaffold", json::object(), StrategyContext{});
  auto* scaffold = dynamic_cast<Scaffold*>(strategy.get());
  auto global = testing::Global({0, 0}, {0});
  scaffold->ConfigureFit(1, *global, {"a"});
  std::shared_ptr<const Parameters> before = scaffold->control();
  auto agg = scaffold->BeginAggregateFit(1, global);
  absl::Status refused = agg->Accept("a", testing::Update({1, 1}, {1}, 10));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(agg->Finish({}).ok());  // nothing was accepted
  EXPECT_EQ(scaffold->control(), before);
}

TEST(ScaffoldTest, PopulationSmallerThanTheCohortIsRefused) {
  StrategyContext context;
  context.min_fit_clients = 10;
  absl::StatusOr<std::unique_ptr<Strategy>> made =
      CreateStrategy("scaffold", json{{"population", 5}}, context);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("population"), std::string::npos) << made.status();
}

// Option II's c_i estimate assumes steps of exactly lr; with client momentum
// it overshoots and the run diverges, so the config is refused up front.
TEST(ScaffoldTest, ClientMomentumIsRefusedNamingTheKey) {
  StrategyContext context;
  context.fit_config.set_momentum(0.9);
  absl::StatusOr<std::unique_ptr<Strategy>> made =
      CreateStrategy("scaffold", json::object(), context);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("fit.momentum"), std::string::npos) << made.status();
  context.fit_config.set_momentum(0);
  EXPECT_TRUE(CreateStrategy("scaffold", json::object(), context).ok());
}

}  // namespace
}  // namespace shoal
