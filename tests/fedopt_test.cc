// Tests of the server-optimizer strategies (FedAvgM, FedAdagrad, FedAdam,
// FedYogi) against golden values computed independently in NumPy
// (tests/golden/fedopt_golden.py), plus hand-computed cases, parameter
// validation and the state they keep across rounds.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/strategy_testing.h"
#include "strategies/fedadagrad.h"
#include "strategies/fedadam.h"
#include "strategies/fedavg.h"
#include "strategies/fedavgm.h"
#include "strategies/fedyogi.h"
#include "strategies/registry.h"

namespace shoal {
namespace {

using testing::Global;
using testing::Update;

// RunRound drives one round of `strategy` from `global` and returns the new
// global model (the test fails, and an empty model returns, on error).
Parameters RunRound(Strategy& strategy, uint32_t round,
                    std::shared_ptr<const Parameters> global,
                    const std::vector<FitRes>& results) {
  std::unique_ptr<FitAggregator> agg =
      strategy.BeginAggregateFit(round, std::move(global));
  for (size_t i = 0; i < results.size(); ++i) {
    absl::Status s = agg->Accept("c" + std::to_string(i), results[i]);
    EXPECT_TRUE(s.ok()) << s;
  }
  absl::StatusOr<Parameters> next = agg->Finish({});
  EXPECT_TRUE(next.ok()) << next.status();
  return next.ok() ? *std::move(next) : Parameters();
}

std::unique_ptr<Strategy> Create(const std::string& name,
                                 const nlohmann::json& params) {
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy(name, params, StrategyContext{});
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

// ---------------------------------------------------------------------------
// Golden data: tests/golden/fedopt_golden.json, from fedopt_golden.py.

nlohmann::json LoadGolden() {
  std::ifstream in(SHOAL_SOURCE_DIR "/tests/golden/fedopt_golden.json");
  EXPECT_TRUE(in.good()) << "cannot open the golden file";
  return nlohmann::json::parse(in);
}

// FromGolden builds a float32 model ("w", "b") from {name: flat values}.
Parameters FromGolden(const nlohmann::json& golden,
                      const nlohmann::json& values) {
  Parameters p;
  for (const nlohmann::json& t : golden.at("tensors")) {
    const std::string name = t.at("name").get<std::string>();
    std::vector<double> flat = values.at(name).get<std::vector<double>>();
    p.Add(name, at::tensor(flat, at::kDouble)
                    .to(at::kFloat)
                    .view(t.at("shape").get<std::vector<int64_t>>()));
  }
  return p;
}

// ExpectMatchesGolden runs the golden file's case `golden_case` (its
// "case"; "name" is the strategy) over its three rounds.
void ExpectMatchesGolden(const std::string& golden_case) {
  const nlohmann::json golden = LoadGolden();
  const nlohmann::json* spec = nullptr;
  for (const nlohmann::json& s : golden.at("strategies")) {
    if (s.at("case") == golden_case) spec = &s;
  }
  ASSERT_NE(spec, nullptr) << golden_case << " is missing from the golden file";
  const std::string name = spec->at("name").get<std::string>();
  std::unique_ptr<Strategy> strategy = Create(name, spec->at("params"));
  ASSERT_NE(strategy, nullptr);
  EXPECT_EQ(strategy->name(), name);

  auto global = std::make_shared<const Parameters>(
      FromGolden(golden, golden.at("initial")));
  const nlohmann::json& rounds = golden.at("rounds");
  ASSERT_EQ(rounds.size(), 3u);
  ASSERT_EQ(spec->at("expected").size(), rounds.size());
  for (size_t r = 0; r < rounds.size(); ++r) {
    std::vector<FitRes> results;
    for (const nlohmann::json& c : rounds[r]) {
      FitRes res;
      res.update = FromGolden(golden, c.at("update"));
      res.num_examples = c.at("num_examples").get<int64_t>();
      results.push_back(std::move(res));
    }
    Parameters next = RunRound(*strategy, r + 1, global, results);
    ASSERT_EQ(next.size(), 2u);
    const Parameters want = FromGolden(golden, spec->at("expected")[r]);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(next.tensor(i).scalar_type(), at::kFloat);
      // Both sides hold float32; a float64 summation-order difference may
      // move a value by one float32 ulp (~1.2e-7 relative).
      EXPECT_TRUE(at::allclose(next.tensor(i), want.tensor(i), /*rtol=*/1e-6,
                               /*atol=*/1e-8))
          << name << " round " << r + 1 << " tensor " << want.name(i)
          << "\ngot\n"
          << next.tensor(i) << "\nwant\n"
          << want.tensor(i);
    }
    // The next round starts from the strategy's own output, as in a run.
    global = std::make_shared<const Parameters>(std::move(next));
  }
}

TEST(FedAvgMTest, MatchesNumPyReferenceOverThreeRounds) {
  ExpectMatchesGolden("fedavgm");
}

TEST(FedAdagradTest, MatchesNumPyReferenceOverThreeRounds) {
  ExpectMatchesGolden("fedadagrad");
}

TEST(FedAdamTest, MatchesNumPyReferenceOverThreeRounds) {
  ExpectMatchesGolden("fedadam");
}

TEST(FedYogiTest, MatchesNumPyReferenceOverThreeRounds) {
  ExpectMatchesGolden("fedyogi");
}

TEST(FedAdamTest, BiasCorrectionMatchesNumPyReferenceOverThreeRounds) {
  ExpectMatchesGolden("fedadam_bias_corrected");
}

TEST(FedAdamTest, BiasCorrectionScalesTheFirstStepByItsHandComputedFactor) {
  // One round, one client, one value: Delta = 0.5, beta_1 = 0.8,
  // beta_2 = 0.9, tau = 1e-9, eta = 0.03. Then m = 0.1, v ~ 0.025, and
  // without correction the step is 0.03 * 0.1 / sqrt(0.025) = 0.018974;
  // with it, eta_1 = 0.03 * sqrt(0.1) / 0.2, and the step is
  // 0.03 * sqrt(1 - 0.9) / (1 - 0.8) * 0.1 / sqrt(0.025) = 0.03, exactly
  // eta * sign(Delta), as Adam's first step always is.
  for (bool corrected : {false, true}) {
    SCOPED_TRACE(corrected ? "corrected" : "uncorrected");
    std::unique_ptr<Strategy> s =
        Create("fedadam", {{"server_learning_rate", 0.03},
                           {"beta_1", 0.8},
                           {"beta_2", 0.9},
                           {"bias_correction", corrected}});
    ASSERT_NE(s, nullptr);
    const Parameters next =
        RunRound(*s, 1, Global({0}, {0}), {Update({0.5f}, {0.5f}, 10)});
    ASSERT_EQ(next.size(), 2u);
    const double want = corrected ? 0.03 : 0.03 * 0.1 / std::sqrt(0.025);
    EXPECT_NEAR(next.tensor(0).item<float>(), want, 1e-6);
  }
}

TEST(FedAdamTest, BiasCorrectionIsOffByDefaultAndOnlyFedAdamTakesIt) {
  // Off by default: the default FedAdam matches the uncorrected golden case.
  const nlohmann::json golden = LoadGolden();
  for (const nlohmann::json& s : golden.at("strategies")) {
    if (s.at("case") == "fedadam") {
      EXPECT_FALSE(s.at("params").contains("bias_correction"));
    }
  }
  for (const char* name : {"fedadagrad", "fedyogi", "fedavgm"}) {
    absl::StatusOr<std::unique_ptr<Strategy>> s =
        CreateStrategy(name, {{"bias_correction", true}}, StrategyContext{});
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_NE(s.status().message().find("bias_correction"), std::string::npos)
        << s.status();
  }
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy("fedadam", {{"bias_correction", 1}}, StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'strategy.bias_correction'"),
            std::string::npos)
      << s.status();
}

// ---------------------------------------------------------------------------
// Hand-computed cases.

TEST(FedAvgMTest, HandComputedTwoRoundsWithMomentum) {
  // eta = 0.5, beta = 0.9. Both rounds get the same two results:
  //   client a: n = 1, update w = [ 4, 0], b = [ 1]
  //   client b: n = 3, update w = [-4, 8], b = [-1]
  //   Delta = (1*a + 3*b) / 4 = w [-2, 6], b [-0.5]
  // Round 1: v = 0.9 * 0 + Delta = w [-2, 6], b [-0.5]
  //          x = [1, 2] + 0.5 * v = w [0, 5];  b = 0.5 - 0.25 = [0.25]
  // Round 2: v = 0.9 * Delta + Delta = 1.9 * Delta = w [-3.8, 11.4], b [-0.95]
  //          x = [0, 5] + 0.5 * v = w [-1.9, 10.7]; b = 0.25 - 0.475 = [-0.225]
  FedAvgMOptions options;
  options.server_learning_rate = 0.5;
  options.server_momentum = 0.9;
  FedAvgM fedavgm(options);
  const std::vector<FitRes> results = {Update({4, 0}, {1}, 1),
                                       Update({-4, 8}, {-1}, 3)};
  Parameters one = RunRound(fedavgm, 1, Global({1, 2}, {0.5}), results);
  EXPECT_TRUE(at::allclose(one.tensor(0), at::tensor(std::vector<float>{0, 5})))
      << one.tensor(0);
  EXPECT_TRUE(at::allclose(one.tensor(1), at::tensor(std::vector<float>{0.25})))
      << one.tensor(1);
  Parameters two =
      RunRound(fedavgm, 2, std::make_shared<const Parameters>(one), results);
  EXPECT_TRUE(
      at::allclose(two.tensor(0), at::tensor(std::vector<float>{-1.9, 10.7})))
      << two.tensor(0);
  EXPECT_TRUE(
      at::allclose(two.tensor(1), at::tensor(std::vector<float>{-0.225})))
      << two.tensor(1);
}

TEST(FedAvgMTest, WithoutMomentumAndUnitRateEqualsFedAvgExactly) {
  FedAvgMOptions options;
  options.server_learning_rate = 1.0;
  options.server_momentum = 0.0;
  FedAvgM fedavgm(options);
  FedAvg fedavg({});
  at::manual_seed(7);
  auto global_m = std::make_shared<const Parameters>(
      *Global({0.3f, -1.2f, 4.0f}, {0.0f, 2.5f}));
  auto global_a = global_m;
  for (uint32_t round = 1; round <= 3; ++round) {
    std::vector<FitRes> results;
    for (int i = 0; i < 4; ++i) {
      FitRes r;
      r.update.Add("w", at::randn({3}));
      r.update.Add("b", at::randn({2}));
      r.num_examples = 1 + 13 * i;
      results.push_back(std::move(r));
    }
    Parameters m = RunRound(fedavgm, round, global_m, results);
    Parameters a = RunRound(fedavg, round, global_a, results);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(at::equal(m.tensor(i), a.tensor(i)))
          << "round " << round << ": " << m.tensor(i) << " vs " << a.tensor(i);
    }
    global_m = std::make_shared<const Parameters>(std::move(m));
    global_a = std::make_shared<const Parameters>(std::move(a));
  }
}

TEST(FedAdamTest, FirstRoundStepIsAboutLearningRateTimesSign) {
  // With m = (1 - beta_1) * Delta and v ~ (1 - beta_2) * Delta^2 after one
  // round, the step is eta * (1 - beta_1) / sqrt(1 - beta_2) * sign(Delta)
  // = eta * sign(Delta) with the defaults (tau negligible); a zero Delta
  // gives no step.
  std::unique_ptr<Strategy> fedadam =
      Create("fedadam", nlohmann::json::object());
  ASSERT_NE(fedadam, nullptr);
  Parameters next = RunRound(*fedadam, 1, Global({1, 1}, {1}),
                             {Update({3, -0.001f}, {0}, 5)});
  EXPECT_TRUE(
      at::allclose(next.tensor(0), at::tensor(std::vector<float>{1.1, 0.9})))
      << next.tensor(0);
  EXPECT_EQ(next.tensor(1).item<float>(), 1.0f);
}

// ---------------------------------------------------------------------------
// State across rounds.

TEST(ServerOptimizerTest, StateCarriesAcrossRounds) {
  const std::vector<FitRes> round1 = {Update({0.5, -0.2}, {0.1}, 2),
                                      Update({0.1, 0.4}, {-0.3}, 6)};
  const std::vector<FitRes> round2 = {Update({-0.3, 0.2}, {0.05}, 3),
                                      Update({0.2, 0.1}, {0.2}, 1)};
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Strategy> used = Create(name, nlohmann::json::object());
    std::unique_ptr<Strategy> fresh = Create(name, nlohmann::json::object());
    ASSERT_NE(used, nullptr);
    ASSERT_NE(fresh, nullptr);
    EXPECT_TRUE(used->AggregatesByMean());
    auto after1 = std::make_shared<const Parameters>(
        RunRound(*used, 1, Global({1, 2}, {3}), round1));
    // Same global model and results: only the optimizer state differs.
    Parameters with_state = RunRound(*used, 2, after1, round2);
    Parameters without_state = RunRound(*fresh, 2, after1, round2);
    EXPECT_FALSE(at::allclose(with_state.tensor(0), without_state.tensor(0)))
        << with_state.tensor(0);
  }
}

TEST(ServerOptimizerTest, FailedRoundLeavesStateUntouched) {
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Strategy> failed = Create(name, nlohmann::json::object());
    std::unique_ptr<Strategy> fresh = Create(name, nlohmann::json::object());
    ASSERT_NE(failed, nullptr);
    auto agg = failed->BeginAggregateFit(1, Global({1, 2}, {3}));
    EXPECT_FALSE(
        agg->Finish({{"a", absl::DeadlineExceededError("late")}}).ok());
    const std::vector<FitRes> results = {Update({0.5, -0.2}, {0.1}, 2)};
    Parameters a = RunRound(*failed, 2, Global({1, 2}, {3}), results);
    Parameters b = RunRound(*fresh, 2, Global({1, 2}, {3}), results);
    EXPECT_TRUE(at::equal(a.tensor(0), b.tensor(0)));
    EXPECT_TRUE(at::equal(a.tensor(1), b.tensor(1)));
  }
}

TEST(ServerOptimizerTest, ModelLayoutChangeMidRunIsAnError) {
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Strategy> s = Create(name, nlohmann::json::object());
    ASSERT_NE(s, nullptr);
    RunRound(*s, 1, Global({1, 2}, {3}), {Update({0.5, -0.2}, {0.1}, 2)});
    auto agg = s->BeginAggregateFit(2, Global({1, 2, 3}, {3}));
    ASSERT_TRUE(agg->Accept("a", Update({1, 1, 1}, {1}, 1)).ok());
    absl::StatusOr<Parameters> next = agg->Finish({});
    EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition)
        << next.status();
  }
}

TEST(ServerOptimizerTest, IntegerBuffersKeepTheirGlobalValue) {
  auto global = std::make_shared<Parameters>();
  global->Add("w", at::zeros({2}));
  global->Add("steps", at::tensor(std::vector<int64_t>{7}));
  FitRes r;
  r.update.Add("w", at::ones({2}));
  r.update.Add("steps", at::tensor(std::vector<int64_t>{100}));
  r.num_examples = 2;
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Strategy> s = Create(name, nlohmann::json::object());
    ASSERT_NE(s, nullptr);
    Parameters next = RunRound(*s, 1, global, {r});
    EXPECT_EQ(next.tensor(1).item<int64_t>(), 7);
  }
}

// ---------------------------------------------------------------------------
// Parameters.

TEST(ServerOptimizerTest, RegisteredUnderTheirNamesWithDefaults) {
  std::vector<std::string> names = RegisteredStrategies();
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    std::unique_ptr<Strategy> s = Create(name, nlohmann::json::object());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->name(), name);
  }
}

TEST(ServerOptimizerTest, UnknownParameterIsNamed) {
  absl::StatusOr<std::unique_ptr<Strategy>> s = CreateStrategy(
      "fedavgm", nlohmann::json{{"momentum", 0.9}}, StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'strategy.momentum'"), std::string::npos)
      << s.status();
  s = CreateStrategy("fedadam", nlohmann::json{{"eta", 0.1}},
                     StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'strategy.eta'"), std::string::npos)
      << s.status();
  // FedAdagrad has no second-moment decay: beta_2 is refused, not ignored.
  s = CreateStrategy("fedadagrad", nlohmann::json{{"beta_2", 0.99}},
                     StrategyContext{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'strategy.beta_2'"), std::string::npos)
      << s.status();
}

TEST(ServerOptimizerTest, NonPositiveLearningRateIsRefused) {
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    for (double lr : {-0.1, 0.0}) {
      absl::StatusOr<std::unique_ptr<Strategy>> s =
          CreateStrategy(name, nlohmann::json{{"server_learning_rate", lr}},
                         StrategyContext{});
      ASSERT_FALSE(s.ok()) << name << " lr " << lr;
      EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(s.status().message().find("server_learning_rate"),
                std::string::npos)
          << s.status();
    }
  }
}

TEST(ServerOptimizerTest, BetasOutsideTheUnitIntervalAreRefused) {
  struct Case {
    const char* strategy;
    const char* key;
    double value;
  };
  for (const Case& c :
       std::vector<Case>{{"fedavgm", "server_momentum", 1.0},
                         {"fedavgm", "server_momentum", -0.1},
                         {"fedadagrad", "beta_1", 1.0},
                         {"fedadam", "beta_1", -0.5},
                         {"fedadam", "beta_2", 1.0},
                         {"fedyogi", "beta_2", 1.5},
                         {"fedyogi", "tau", 0.0},
                         {"fedadam", "fraction_evaluate", 2.0}}) {
    absl::StatusOr<std::unique_ptr<Strategy>> s = CreateStrategy(
        c.strategy, nlohmann::json{{c.key, c.value}}, StrategyContext{});
    ASSERT_FALSE(s.ok()) << c.strategy << " " << c.key << " = " << c.value;
    EXPECT_NE(s.status().message().find(c.key), std::string::npos)
        << s.status();
  }
  // The closed ends are accepted.
  EXPECT_NE(Create("fedavgm", {{"server_momentum", 0.0}}), nullptr);
  EXPECT_NE(Create("fedyogi", {{"beta_1", 0.0}, {"beta_2", 0.0}}), nullptr);
}

TEST(ServerOptimizerTest, FractionEvaluateChoosesClientsLikeFedAvg) {
  std::vector<std::string> live = {"a", "b", "c", "d", "e"};
  FedAvgOptions fedavg_options;
  fedavg_options.fraction_evaluate = 0.5;
  fedavg_options.min_evaluate_clients = 3;
  std::vector<EvaluateInstruction> want =
      FedAvg(fedavg_options).ConfigureEvaluate(4, *Global({1}, {1}), live);
  ASSERT_EQ(want.size(), 3u);
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    SCOPED_TRACE(name);
    std::unique_ptr<Strategy> s =
        Create(name, {{"fraction_evaluate", 0.5}, {"min_evaluate_clients", 3}});
    ASSERT_NE(s, nullptr);
    std::vector<EvaluateInstruction> got =
        s->ConfigureEvaluate(4, *Global({1}, {1}), live);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].client_id, want[i].client_id);
    }
    EXPECT_TRUE(Create(name, nlohmann::json::object())
                    ->ConfigureEvaluate(4, *Global({1}, {1}), live)
                    .empty());
  }
}

TEST(ServerOptimizerTest, ConfigureFitSendsTheExperimentsFitConfig) {
  StrategyContext context;
  context.fit_config.set_local_epochs(4);
  for (const char* name : {"fedavgm", "fedadagrad", "fedadam", "fedyogi"}) {
    absl::StatusOr<std::unique_ptr<Strategy>> s =
        CreateStrategy(name, nlohmann::json::object(), context);
    ASSERT_TRUE(s.ok()) << s.status();
    std::vector<FitInstruction> plan =
        (*s)->ConfigureFit(1, *Global({1}, {1}), {"a", "b"});
    ASSERT_EQ(plan.size(), 2u) << name;
    EXPECT_EQ(plan[1].config.local_epochs(), 4u) << name;
  }
}

}  // namespace
}  // namespace shoal
