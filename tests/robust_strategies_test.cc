// Tests of the robust (per-client) strategies: FedMedian, FedTrimmedAvg,
// Krum, Multi-Krum and Bulyan. The golden cases come from
// tests/golden/robust_golden.py, an independent NumPy implementation of the
// papers' rules.
#include <ATen/ATen.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "strategies/aggregate.h"
#include "strategies/bulyan.h"
#include "strategies/fedavg.h"
#include "strategies/fedmedian.h"
#include "strategies/fedtrimmedavg.h"
#include "strategies/krum.h"
#include "strategies/registry.h"
#include "tests/strategy_testing.h"

namespace shoal {
namespace {

using ::nlohmann::json;
using ::shoal::testing::ParametersFromJson;
using ::shoal::testing::TensorFromJson;

constexpr double kTolerance = 1e-6;

const json& Golden() {
  static const json* const golden = [] {
    std::ifstream in(SHOAL_SOURCE_DIR "/tests/golden/robust_golden.json");
    EXPECT_TRUE(in.good()) << "cannot open robust_golden.json";
    std::stringstream text;
    text << in.rdbuf();
    return new json(json::parse(text.str()));
  }();
  return *golden;
}

// Runs one strategy, created through the registry, over `results` in order.
absl::StatusOr<Parameters> Aggregate(const std::string& strategy,
                                     const json& params,
                                     std::shared_ptr<const Parameters> global,
                                     const std::vector<FitRes>& results) {
  StrategyContext context;
  context.min_fit_clients = static_cast<uint32_t>(results.size());
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy(strategy, params, context);
  if (!s.ok()) return s.status();
  std::unique_ptr<FitAggregator> agg =
      (*s)->BeginAggregateFit(1, std::move(global));
  for (size_t i = 0; i < results.size(); ++i) {
    absl::Status accepted =
        // Zero-padded: the aggregator orders rows by client ID, and the
        // golden script breaks ties in client index order.
        agg->Accept(absl::StrFormat("client%03d", i), results[i]);
    if (!accepted.ok()) return accepted;
  }
  return agg->Finish({});
}

// Checks every golden case of `strategy`; returns how many there were.
int CheckGoldenCases(const std::string& strategy) {
  const json& golden = Golden();
  auto global = std::make_shared<const Parameters>(
      ParametersFromJson(golden.at("global"), at::kFloat));
  int checked = 0;
  for (const json& c : golden.at("cases")) {
    if (c.at("strategy") != strategy) continue;
    SCOPED_TRACE(c.at("name").get<std::string>() + ": " +
                 c.at("note").get<std::string>());
    std::vector<FitRes> results;
    for (int i : c.at("clients")) {
      const json& client = golden.at("clients").at(i);
      FitRes res;
      res.update = ParametersFromJson(client.at("update"), at::kFloat);
      res.num_examples = client.at("num_examples");
      results.push_back(std::move(res));
    }
    absl::StatusOr<Parameters> next =
        Aggregate(strategy, c.at("params"), global, results);
    ++checked;
    if (!next.ok()) {
      ADD_FAILURE() << next.status();
      continue;
    }
    const Parameters expected =
        ParametersFromJson(c.at("expected"), at::kDouble);
    for (size_t t = 0; t < expected.size(); ++t) {
      EXPECT_EQ(next->name(t), expected.name(t));
      EXPECT_EQ(next->tensor(t).scalar_type(), at::kFloat);
      const at::Tensor got = next->tensor(t).to(at::kDouble);
      EXPECT_TRUE(at::allclose(got, expected.tensor(t), /*rtol=*/kTolerance,
                               /*atol=*/kTolerance))
          << expected.name(t) << ": got\n"
          << got << "\nexpected\n"
          << expected.tensor(t) << "\nmax |diff| "
          << (got - expected.tensor(t)).abs().max().item<double>();
    }
  }
  return checked;
}

// A one-tensor model "x".
std::shared_ptr<const Parameters> Global(std::vector<float> x) {
  auto p = std::make_shared<Parameters>();
  p->Add("x", at::tensor(x));
  return p;
}

FitRes Update(std::vector<float> x, int64_t num_examples = 10) {
  FitRes res;
  res.update.Add("x", at::tensor(x));
  res.num_examples = num_examples;
  return res;
}

std::vector<float> Values(const Parameters& p) {
  at::Tensor t = p.tensor(0).contiguous();
  return std::vector<float>(t.data_ptr<float>(),
                            t.data_ptr<float>() + t.numel());
}

StrategyContext WithMinFit(uint32_t min_fit_clients) {
  StrategyContext context;
  context.min_fit_clients = min_fit_clients;
  return context;
}

std::string ErrorOf(const std::string& strategy, const json& params,
                    uint32_t min_fit_clients) {
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy(strategy, params, WithMinFit(min_fit_clients));
  if (s.ok()) return "";
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

// --- Golden data -----------------------------------------------------------

TEST(FedMedianTest, MatchesTheNumPyReference) {
  EXPECT_EQ(CheckGoldenCases("fedmedian"), 2);
}

TEST(FedTrimmedAvgTest, MatchesTheNumPyReference) {
  EXPECT_EQ(CheckGoldenCases("fedtrimmedavg"), 4);
}

TEST(KrumTest, MatchesTheNumPyReference) {
  EXPECT_EQ(CheckGoldenCases("krum"), 3);
}

TEST(MultiKrumTest, MatchesTheNumPyReference) {
  EXPECT_EQ(CheckGoldenCases("multikrum"), 4);
}

TEST(BulyanTest, MatchesTheNumPyReference) {
  EXPECT_EQ(CheckGoldenCases("bulyan"), 3);
}

// --- Behaviour ---------------------------------------------------------------

TEST(FedMedianTest, EvenCountAveragesTheTwoMiddleValuesLikeNumPy) {
  // np.median([1, 2, 10, 4]) = (2 + 4) / 2 = 3, where at::median gives 2;
  // np.median([-1, -3, 5, 7]) = (-1 + 5) / 2 = 2.
  absl::StatusOr<Parameters> next = Aggregate(
      "fedmedian", json::object(), Global({0, 100}),
      {Update({1, -1}), Update({2, -3}), Update({10, 5}), Update({4, 7})});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(Values(*next), (std::vector<float>{3, 102}));
}

TEST(FedMedianTest, IgnoresNumExamples) {
  absl::StatusOr<Parameters> next =
      Aggregate("fedmedian", json::object(), Global({0}),
                {Update({1}, 1), Update({2}, 1), Update({1000}, 1000000)});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(Values(*next), (std::vector<float>{2}));
}

TEST(PerClientAggregatorTest, RowsComeInClientIdOrderAcrossSlabs) {
  // Updates of 16.8 MB: the aggregator's 64 MiB slabs hold 4 of them, so
  // these 7, arriving out of ID order, span two slabs. Client k's update is
  // all k + 0.5, with k + 100 examples.
  const int64_t d = 4200000;
  auto global = std::make_shared<Parameters>();
  global->Add("x", at::zeros({d}));
  at::Tensor stacked;
  std::vector<int64_t> examples;
  PerClientAggregator agg(
      global,
      [&](const at::Tensor& updates, const std::vector<int64_t>& num_examples)
          -> absl::StatusOr<at::Tensor> {
        stacked = updates;
        examples = num_examples;
        return updates[0];
      });
  for (int k : {5, 2, 6, 0, 3, 1, 4}) {
    FitRes res;
    res.update.Add("x", at::full({d}, k + 0.5));
    res.num_examples = k + 100;
    ASSERT_TRUE(agg.Accept(absl::StrFormat("c%d", k), res).ok());
  }
  ASSERT_TRUE(agg.Finish({}).ok());
  ASSERT_EQ(stacked.sizes(), (std::vector<int64_t>{7, d}));
  for (int64_t k = 0; k < 7; ++k) {
    EXPECT_TRUE(stacked[k].eq(k + 0.5).all().item<bool>()) << "row " << k;
    EXPECT_EQ(examples[k], k + 100);
  }
}

TEST(RobustStrategiesTest, ColumnBlocksGiveTheWholeMatrixResultBitForBit) {
  // FedMedian and FedTrimmedAvg work on blocks of ~1M elements; these
  // matrices span three blocks, the last one ragged. The reference is the
  // whole-matrix computation, done at once as before blocking.
  auto median = [](const at::Tensor& u) {
    const int64_t n = u.size(0);
    const at::Tensor lower = std::get<0>(at::kthvalue(u, (n + 1) / 2, 0));
    if (n % 2 == 1) return lower;
    return (lower + std::get<0>(at::kthvalue(u, n / 2 + 1, 0))) / 2;
  };
  auto trimmed_mean = [](const at::Tensor& u) {  // beta = 0.1
    const int64_t n = u.size(0), k = n / 10;
    return std::get<0>(at::sort(u, 0)).narrow(0, k, n - 2 * k).mean(0);
  };
  struct Case {
    std::string strategy;
    json params;
    int64_t n, d;
    std::function<at::Tensor(const at::Tensor&)> reference;
  };
  const std::vector<Case> cases = {
      {"fedmedian", json::object(), 49, 50017, median},
      {"fedmedian", json::object(), 50, 50017, median},
      {"fedmedian", json::object(), 1000, 2517, median},
      {"fedtrimmedavg", json{{"beta", 0.1}}, 50, 50017, trimmed_mean},
  };
  at::manual_seed(5);
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrFormat("%s, n = %d, D = %d", c.strategy, c.n, c.d));
    const at::Tensor updates = at::randn({c.n, c.d});
    std::vector<FitRes> results;
    for (int64_t i = 0; i < c.n; ++i) {
      FitRes res;
      res.update.Add("x", updates[i].clone());
      res.num_examples = 10;
      results.push_back(std::move(res));
    }
    auto global = std::make_shared<Parameters>();
    global->Add("x", at::zeros({c.d}));  // 0 + x is exact: next is x itself
    absl::StatusOr<Parameters> next =
        Aggregate(c.strategy, c.params, global, results);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_TRUE(at::equal(next->tensor(0), c.reference(updates)));
  }
}

TEST(FedTrimmedAvgTest, ZeroBetaIsThePlainUnweightedMean) {
  at::manual_seed(7);
  const at::Tensor updates = at::randn({6, 50});
  std::vector<FitRes> results;
  for (int64_t i = 0; i < 6; ++i) {
    FitRes res;
    res.update.Add("x", updates[i].clone());
    res.num_examples = 1 + 100 * i;  // unequal, and ignored
    results.push_back(std::move(res));
  }
  auto global = std::make_shared<Parameters>();
  global->Add("x", at::zeros({50}));
  absl::StatusOr<Parameters> next =
      Aggregate("fedtrimmedavg", json{{"beta", 0}}, global, results);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(at::allclose(next->tensor(0), updates.mean(0), 1e-6, 1e-6));
}

TEST(FedTrimmedAvgTest, DropsTheSmallestAndLargestPerCoordinate) {
  // n = 5, beta = 0.2: k = 1 per side. Column 0 keeps {2, 3, 4}, column 1
  // keeps {-1, 0, 1} although the extremes sit in different clients.
  absl::StatusOr<Parameters> next =
      Aggregate("fedtrimmedavg", json{{"beta", 0.2}}, Global({0, 0}),
                {Update({1, 50}), Update({2, 0}), Update({3, -1}),
                 Update({4, -50}), Update({100, 1})});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(Values(*next), (std::vector<float>{3, 0}));
}

TEST(KrumTest, IgnoresAFarOutlierThatPullsFedAvgAway) {
  // Four honest clients near (1, 1) and one far outlier claiming most of the
  // examples. n = 5 allows f = 1 (2f + 3 = 5).
  const std::vector<FitRes> results = {
      Update({1.0f, 1.1f}, 10), Update({0.9f, 1.0f}, 10),
      Update({1.1f, 0.9f}, 10), Update({1.0f, 0.95f}, 10),
      Update({1000, -1000}, 10000)};
  FedAvg fedavg({});
  std::unique_ptr<FitAggregator> avg =
      fedavg.BeginAggregateFit(1, Global({0, 0}));
  for (const FitRes& r : results) ASSERT_TRUE(avg->Accept("c", r).ok());
  const std::vector<float> pulled = Values(*avg->Finish({}));
  EXPECT_GT(pulled[0], 900);  // FedAvg follows the outlier

  absl::StatusOr<Parameters> next =
      Aggregate("krum", json{{"num_malicious", 1}}, Global({0, 0}), results);
  ASSERT_TRUE(next.ok()) << next.status();
  // Scores (sum of squared distances to the 5 - 1 - 2 = 2 nearest): client 3
  // (1, 0.95) is nearest to all the others, so Krum applies exactly its
  // update.
  EXPECT_EQ(Values(*next), (std::vector<float>{1.0f, 0.95f}));
}

// AggregateInArrivalOrder runs `strategy` with each (client ID, update)
// offered in the order given, which need not be the IDs' order.
absl::StatusOr<Parameters> AggregateInArrivalOrder(
    const std::string& strategy, const json& params,
    std::shared_ptr<const Parameters> global,
    const std::vector<std::pair<std::string, FitRes>>& arrivals) {
  absl::StatusOr<std::unique_ptr<Strategy>> s = CreateStrategy(
      strategy, params, WithMinFit(static_cast<uint32_t>(arrivals.size())));
  if (!s.ok()) return s.status();
  std::unique_ptr<FitAggregator> agg =
      (*s)->BeginAggregateFit(1, std::move(global));
  for (const auto& [id, res] : arrivals) {
    SHOAL_RETURN_IF_ERROR(agg->Accept(id, res));
  }
  return agg->Finish({});
}

TEST(KrumTest, EqualScoresAreBrokenByClientIdNotArrival) {
  // 2, 0 and 1 on a line, f = 0: each has one neighbour at squared distance
  // 1, so all three scores tie. The lowest client ID ("a", update 2) wins,
  // although "c" (update 1) arrived first.
  absl::StatusOr<Parameters> next = AggregateInArrivalOrder(
      "krum", json::object(), Global({0}),
      {{"c", Update({1})}, {"b", Update({0})}, {"a", Update({2})}});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(Values(*next), (std::vector<float>{2}));
}

TEST(BulyanTest, EqualScoresAreBrokenByClientIdNotArrival) {
  // f = 1, n = 7. Bulyan's Krum passes meet equal scores here, and the
  // choice changes the result: tests/golden/robust_golden.py's bulyan()
  // gives -2/3 with the rows in client-ID order (c0..c6) and -1 with them
  // in the reverse order, the order they arrive in below.
  const std::vector<float> by_id = {-1, -2, 1, -2, 4, 4, 4};
  std::vector<std::pair<std::string, FitRes>> arrivals;
  for (int i = 6; i >= 0; --i) {
    arrivals.push_back({"c" + std::to_string(i), Update({by_id[i]})});
  }
  absl::StatusOr<Parameters> next = AggregateInArrivalOrder(
      "bulyan", json{{"num_malicious", 1}}, Global({0}), arrivals);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NEAR(Values(*next)[0], -2.0 / 3.0, 1e-6);
}

TEST(MultiKrumTest, AveragesTheLowestScoredUpdatesUnweighted) {
  // Same cohort; m = 2 averages the two lowest-scored updates equally,
  // whatever their num_examples.
  const std::vector<FitRes> results = {
      Update({1.0f, 1.1f}, 1), Update({0.9f, 1.0f}, 10),
      Update({1.1f, 0.9f}, 10), Update({1.0f, 0.95f}, 100),
      Update({1000, -1000}, 10000)};
  // Squared distances: d(0,1) = 0.02, d(0,2) = 0.05, d(0,3) = 0.0225,
  // d(1,2) = 0.05, d(1,3) = 0.0125, d(2,3) = 0.0125; two nearest each:
  // s0 = 0.0425, s1 = 0.0325, s2 = 0.0625, s3 = 0.025 -> clients 3 and 1.
  absl::StatusOr<Parameters> next =
      Aggregate("multikrum", json{{"num_malicious", 1}, {"num_selected", 2}},
                Global({0, 0}), results);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(at::allclose(next->tensor(0),
                           at::tensor(std::vector<float>{0.95f, 0.975f})))
      << next->tensor(0);
}

TEST(KrumTest, TooFewResultsFailTheRoundWithAClearMessage) {
  absl::StatusOr<std::unique_ptr<Strategy>> krum =
      CreateStrategy("krum", json{{"num_malicious", 1}}, WithMinFit(5));
  ASSERT_TRUE(krum.ok()) << krum.status();
  std::unique_ptr<FitAggregator> agg =
      (*krum)->BeginAggregateFit(1, Global({0}));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(agg->Accept("c", Update({1})).ok());
  absl::StatusOr<Parameters> next =
      agg->Finish({{"late", absl::DeadlineExceededError("")}});
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(next.status().message().find(
                "num_malicious = 1 needs at least 2 * 1 + 3 = 5 "
                "results, but only 4 arrived"),
            std::string::npos)
      << next.status();
}

TEST(MultiKrumTest, MoreSelectedThanPossiblyHonestResultsFailsTheRound) {
  // Created for 7 results (m = 5 <= 7 - 1), but only 5 arrive: 5 > 5 - 1.
  absl::StatusOr<std::unique_ptr<Strategy>> s = CreateStrategy(
      "multikrum", json{{"num_malicious", 1}, {"num_selected", 5}},
      WithMinFit(7));
  ASSERT_TRUE(s.ok()) << s.status();
  std::unique_ptr<FitAggregator> agg = (*s)->BeginAggregateFit(1, Global({0}));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(agg->Accept("c", Update({1})).ok());
  absl::StatusOr<Parameters> next = agg->Finish({});
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(next.status().message().find("num_selected = 5"), std::string::npos)
      << next.status();
}

TEST(BulyanTest, TooFewResultsFailTheRoundWithAClearMessage) {
  absl::StatusOr<std::unique_ptr<Strategy>> bulyan =
      CreateStrategy("bulyan", json{{"num_malicious", 1}}, WithMinFit(7));
  ASSERT_TRUE(bulyan.ok()) << bulyan.status();
  std::unique_ptr<FitAggregator> agg =
      (*bulyan)->BeginAggregateFit(1, Global({0}));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(agg->Accept("c", Update({1})).ok());
  absl::StatusOr<Parameters> next = agg->Finish({});
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(next.status().message().find(
                "needs at least 4 * 1 + 3 = 7 results, but only 6"),
            std::string::npos)
      << next.status();
}

TEST(BulyanTest, KeepsEveryCoordinateNearTheHonestValues) {
  // n = 7, f = 1. One Byzantine update agrees with the honest ones except in
  // one coordinate, and claims most of the examples.
  const std::vector<FitRes> results = {
      Update({1.0f, 1.0f, 1.0f}),       Update({1.1f, 0.9f, 1.0f}),
      Update({0.9f, 1.1f, 1.05f}),      Update({1.05f, 1.0f, 0.9f}),
      Update({1.0f, 0.95f, 1.1f}),      Update({0.95f, 1.05f, 0.95f}),
      Update({1.0f, 1.0f, 30.0f}, 1000)};
  absl::StatusOr<Parameters> next = Aggregate(
      "bulyan", json{{"num_malicious", 1}}, Global({0, 0, 0}), results);
  ASSERT_TRUE(next.ok()) << next.status();
  for (float v : Values(*next)) {
    EXPECT_GE(v, 0.9f);
    EXPECT_LE(v, 1.1f);
  }
}

TEST(RobustStrategiesTest, AllAggregatePerClientAndReportTheirName) {
  for (const char* name :
       {"fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<std::unique_ptr<Strategy>> s =
        CreateStrategy(name, json::object(), WithMinFit(3));
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_FALSE((*s)->AggregatesByMean());
    EXPECT_EQ((*s)->name(), name);
  }
}

TEST(RobustStrategiesTest, FractionEvaluateAsksClientsToEvaluateLikeFedAvg) {
  const std::vector<std::string> live = {"a", "b", "c", "d"};
  for (const char* name :
       {"fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<std::unique_ptr<Strategy>> s =
        CreateStrategy(name, json{{"fraction_evaluate", 0.5}}, WithMinFit(3));
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ((*s)->ConfigureEvaluate(1, *Global({0}), live).size(), 2u);
    EXPECT_EQ((*s)->ConfigureFit(1, *Global({0}), live).size(), 4u);
  }
}

TEST(RobustStrategiesTest, TrimFractionOfHalfOrMoreIsRefused) {
  for (double beta : {0.5, 0.7}) {
    const std::string error =
        ErrorOf("fedtrimmedavg", json{{"beta", beta}}, 10);
    EXPECT_NE(error.find("'strategy.beta'"), std::string::npos) << error;
    EXPECT_NE(error.find("[0, 0.5)"), std::string::npos) << error;
    EXPECT_NE(error.find("EACH side"), std::string::npos) << error;
  }
  EXPECT_NE(ErrorOf("fedtrimmedavg", json{{"beta", -0.1}}, 10), "");
  EXPECT_EQ(ErrorOf("fedtrimmedavg", json{{"beta", 0.49}}, 10), "");
  EXPECT_EQ(ErrorOf("fedtrimmedavg", json{{"beta", 0}}, 10), "");
}

TEST(RobustStrategiesTest, TooManyMaliciousForMinFitClientsIsRefused) {
  // Krum needs 2f + 3 results: f = 2 needs 7.
  for (const char* name : {"krum", "multikrum"}) {
    SCOPED_TRACE(name);
    const std::string error = ErrorOf(name, json{{"num_malicious", 2}}, 6);
    EXPECT_NE(error.find("num_malicious = 2"), std::string::npos) << error;
    EXPECT_NE(error.find("= 7 results"), std::string::npos) << error;
    EXPECT_NE(error.find("min_fit_clients = 6"), std::string::npos) << error;
    EXPECT_EQ(ErrorOf(name, json{{"num_malicious", 2}}, 7), "");
  }
  // Bulyan needs 4f + 3: f = 2 needs 11.
  const std::string error = ErrorOf("bulyan", json{{"num_malicious", 2}}, 10);
  EXPECT_NE(error.find("num_malicious = 2"), std::string::npos) << error;
  EXPECT_NE(error.find("= 11 results"), std::string::npos) << error;
  EXPECT_NE(error.find("min_fit_clients = 10"), std::string::npos) << error;
  EXPECT_EQ(ErrorOf("bulyan", json{{"num_malicious", 2}}, 11), "");
  // Even f = 0 needs three results.
  EXPECT_NE(ErrorOf("krum", json::object(), 2), "");
  EXPECT_NE(ErrorOf("bulyan", json::object(), 2), "");
  EXPECT_NE(ErrorOf("krum", json{{"num_malicious", -1}}, 10), "");
  // Past INT64_MAX the value is named as written, not wrapped to a negative.
  const std::string huge =
      ErrorOf("krum", json{{"num_malicious", uint64_t{18446744073709551615u}}}, 10);
  EXPECT_NE(huge.find("= 18446744073709551615 is out of range"), std::string::npos) << huge;
}

TEST(RobustStrategiesTest, NumSelectedIsCheckedAndOnlyMultiKrumTakesIt) {
  const std::string krum = ErrorOf("krum", json{{"num_selected", 2}}, 10);
  EXPECT_NE(krum.find("'strategy.num_selected'"), std::string::npos) << krum;
  EXPECT_NE(krum.find("multikrum"), std::string::npos) << krum;
  // m <= min_fit_clients - f.
  const std::string multi =
      ErrorOf("multikrum", json{{"num_malicious", 2}, {"num_selected", 6}}, 7);
  EXPECT_NE(multi.find("num_selected = 6"), std::string::npos) << multi;
  EXPECT_EQ(
      ErrorOf("multikrum", json{{"num_malicious", 2}, {"num_selected", 5}}, 7),
      "");
  EXPECT_NE(ErrorOf("multikrum", json{{"num_selected", 0}}, 7), "");
}

TEST(RobustStrategiesTest, UnknownParameterIsNamed) {
  for (const char* name :
       {"fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"}) {
    SCOPED_TRACE(name);
    const std::string error = ErrorOf(name, json{{"num_byzantine", 1}}, 20);
    EXPECT_NE(error.find("'strategy.num_byzantine'"), std::string::npos)
        << error;
    EXPECT_NE(error.find(name), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace shoal
