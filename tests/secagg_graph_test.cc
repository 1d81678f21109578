// The SecAgg+ neighbour graph: the shape of the graph (degree, symmetry,
// connectivity), its dependence on the seed alone (rebuilt here from
// ExpandMask), and the chosen (k, t) against binomial tails summed directly
// in long double.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <queue>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "secagg/crypto.h"
#include "secagg/graph.h"

namespace shoal::secagg {
namespace {

using ::testing::HasSubstr;
using Graph = std::vector<std::vector<uint32_t>>;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

Bytes Seed(char fill) { return Bytes(kKeySize, fill); }

Graph MustMake(uint32_t n, uint32_t k, const Bytes& seed) {
  absl::StatusOr<Graph> graph = MakeNeighbourGraph(n, k, seed);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return graph.ok() ? *graph : Graph();
}

// ExpectWellFormed checks that every client has exactly k neighbours,
// ascending (hence distinct), in [1, n], never itself, and that the relation
// is symmetric.
void ExpectWellFormed(const Graph& graph, uint32_t n, uint32_t k) {
  ASSERT_EQ(graph.size(), n);
  for (uint32_t i = 1; i <= n; ++i) {
    const std::vector<uint32_t>& mine = graph[i - 1];
    ASSERT_EQ(mine.size(), k) << "client " << i;
    for (size_t a = 0; a < mine.size(); ++a) {
      const uint32_t j = mine[a];
      ASSERT_GE(j, 1u);
      ASSERT_LE(j, n);
      EXPECT_NE(j, i) << "client " << i << " neighbours itself";
      if (a > 0) {
        EXPECT_LT(mine[a - 1], j)
            << "client " << i << " not strictly ascending";
      }
      const std::vector<uint32_t>& theirs = graph[j - 1];
      EXPECT_TRUE(std::binary_search(theirs.begin(), theirs.end(), i))
          << i << " -> " << j << " but not back";
    }
  }
}

// Connected runs a breadth-first search from client 1.
bool Connected(const Graph& graph) {
  std::vector<bool> seen(graph.size(), false);
  std::queue<uint32_t> frontier;
  frontier.push(1);
  seen[0] = true;
  size_t reached = 1;
  while (!frontier.empty()) {
    const uint32_t i = frontier.front();
    frontier.pop();
    for (uint32_t j : graph[i - 1]) {
      if (!seen[j - 1]) {
        seen[j - 1] = true;
        ++reached;
        frontier.push(j);
      }
    }
  }
  return reached == graph.size();
}

TEST(NeighbourGraphTest, EveryClientHasKDistinctSymmetricNeighbours) {
  const std::vector<std::pair<uint32_t, uint32_t>> cases = {
      {2, 1},  {3, 2},  {4, 2},    {4, 3},   {5, 2},    {5, 4},
      {10, 4}, {11, 6}, {100, 10}, {101, 2}, {1000, 98}};
  for (const auto& [n, k] : cases) {
    SCOPED_TRACE(testing::Message() << "n=" << n << " k=" << k);
    ExpectWellFormed(MustMake(n, k, Seed('\x07')), n, k);
  }
}

TEST(NeighbourGraphTest, DegreeNMinusOneIsTheCompleteGraph) {
  for (uint32_t n : {2u, 3u, 6u, 7u}) {
    const Graph graph = MustMake(n, n - 1, Seed('\x01'));
    ASSERT_EQ(graph.size(), n);
    for (uint32_t i = 1; i <= n; ++i) {
      std::vector<uint32_t> others;
      for (uint32_t j = 1; j <= n; ++j) {
        if (j != i) others.push_back(j);
      }
      EXPECT_EQ(graph[i - 1], others) << "n=" << n << " client " << i;
    }
    EXPECT_EQ(MustMake(n, n - 1, Seed('\x02')), graph)
        << "the complete graph depends on the seed";
  }
}

TEST(NeighbourGraphTest, IsTheHararyGraphOnTheSeedsCycleOrder) {
  // Rebuild the documented construction: sort clients by (ExpandMask key,
  // index), join each to its k/2 successors and predecessors on that cycle.
  const uint32_t n = 60, k = 6;
  const Bytes seed = Seed('\x2a');
  absl::StatusOr<std::vector<uint64_t>> keys =
      ExpandMask(seed, "neighbour-graph", n, uint64_t{1} << 62);
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::vector<uint32_t> cycle(n);
  std::iota(cycle.begin(), cycle.end(), 1u);
  std::sort(cycle.begin(), cycle.end(), [&](uint32_t a, uint32_t b) {
    return std::make_pair((*keys)[a - 1], a) <
           std::make_pair((*keys)[b - 1], b);
  });
  const Graph graph = MustMake(n, k, seed);
  ASSERT_EQ(graph.size(), n);
  int adjacent_labels =
      0;  // i and i + 1 neighbours: rare if the order is random
  for (uint32_t pos = 0; pos < n; ++pos) {
    std::vector<uint32_t> expected;
    for (uint32_t d = 1; d <= k / 2; ++d) {
      expected.push_back(cycle[(pos + d) % n]);
      expected.push_back(cycle[(pos + n - d) % n]);
    }
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(graph[cycle[pos] - 1], expected) << "client " << cycle[pos];
    const std::vector<uint32_t>& mine = graph[cycle[pos] - 1];
    adjacent_labels +=
        std::binary_search(mine.begin(), mine.end(), cycle[pos] % n + 1);
  }
  // A random cycle makes about n * k / n = k such pairs; the identity order
  // would make all n.
  EXPECT_LT(adjacent_labels, 25);
}

TEST(NeighbourGraphTest, SameSeedSameGraphOtherSeedAnother) {
  const Graph a = MustMake(100, 10, Seed('\x11'));
  const Graph b = MustMake(100, 10, Seed('\x11'));
  Bytes other = Seed('\x11');
  other[31] ^= 1;  // one bit
  const Graph c = MustMake(100, 10, other);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(NeighbourGraphTest, RefusesBadArguments) {
  const Bytes seed = Seed('\x03');
  for (uint32_t degree :
       {0u, 1u, 3u, 9u, 10u, 11u}) {  // n = 10: 9 is complete, fine
    absl::StatusOr<Graph> graph = MakeNeighbourGraph(10, degree, seed);
    if (degree == 9) {
      EXPECT_TRUE(graph.ok()) << graph.status();
      continue;
    }
    ASSERT_FALSE(graph.ok()) << "degree " << degree;
    EXPECT_EQ(graph.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(graph.status()), HasSubstr("degree")) << degree;
  }
  for (size_t size : {0, 16, 31, 33}) {
    absl::StatusOr<Graph> graph = MakeNeighbourGraph(10, 4, Bytes(size, 'x'));
    ASSERT_FALSE(graph.ok()) << "seed of " << size << " bytes";
    EXPECT_EQ(graph.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(graph.status()), HasSubstr("seed"));
  }
  // The complete graph ignores the seed's bytes but not its size.
  EXPECT_FALSE(MakeNeighbourGraph(10, 9, Bytes(5, 'x')).ok());
  for (uint32_t n : {0u, 1u}) {
    absl::StatusOr<Graph> graph = MakeNeighbourGraph(n, 0, seed);
    ASSERT_FALSE(graph.ok()) << "n " << n;
    EXPECT_EQ(graph.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(graph.status()), HasSubstr("num_clients"));
  }
}

TEST(NeighbourGraphTest, SparseGraphsAreConnected) {
  for (uint32_t n : {5u, 7u, 50u, 100u, 1000u}) {
    for (uint32_t k : {2u, 4u, 10u}) {
      if (k >= n - 1) continue;
      for (char s = 0; s < 5; ++s) {
        const Graph graph = MustMake(n, k, Seed(s));
        EXPECT_TRUE(Connected(graph))
            << "n=" << n << " k=" << k << " seed " << int{s};
      }
    }
  }
}

// Binomial tails by direct long double summation of every term, as an
// independent check of graph.cc's mode-relative walk.
long double LogPmf(int k, int j, long double p) {
  return std::lgamma(k + 1.0L) - std::lgamma(j + 1.0L) -
         std::lgamma(k - j + 1.0L) + j * std::log(p) + (k - j) * std::log1p(-p);
}

// P[X >= m], X ~ Binomial(k, p).
long double UpperTail(int k, long double p, int m) {
  if (m <= 0) return 1;
  if (m > k || p == 0) return 0;
  long double sum = 0;
  for (int j = m; j <= k; ++j) sum += std::exp(LogPmf(k, j, p));
  return sum;
}

// P[X < t], X ~ Binomial(k, p).
long double LowerTail(int k, long double p, int t) {
  if (t <= 0) return 0;
  if (t > k) return 1;
  if (p == 1) return 0;
  long double sum = 0;
  for (int j = 0; j < t; ++j) sum += std::exp(LogPmf(k, j, p));
  return sum;
}

struct Bounds {
  int n;
  long double delta, gamma, eps_s, eps_c;

  Bounds(int n, const GraphOptions& o)
      : n(n),
        delta(o.dropout_rate),
        gamma(o.adversary_rate),
        eps_s(std::ldexp(1.0L, -o.security_bits) / n),
        eps_c(std::ldexp(1.0L, -o.correctness_bits) / n) {}

  // A relative slack of 1e-9 keeps rounding at a boundary from deciding.
  bool Secure(int k, int t) const {
    return UpperTail(k, gamma, 2 * t - k) <= eps_s * (1 + 1e-9L);
  }
  bool Correct(int k, int t) const {
    return LowerTail(k, 1 - delta - gamma, t) <= eps_c * (1 + 1e-9L);
  }
  bool Isolated(int k) const {
    return std::pow(delta + gamma, k) > eps_s * (1 + 1e-9L);
  }
  // Feasible: some t in [1, k] is both secure and correct. Secure is
  // monotone up in t and Correct down, so the smallest secure t decides.
  bool Feasible(int k) const {
    if (Isolated(k)) return false;
    for (int t = 1; t <= k; ++t) {
      if (Secure(k, t)) return Correct(k, t);
    }
    return false;
  }
};

TEST(ChooseGraphParametersTest, SmallCohortsGetTheCompleteGraph) {
  struct Case {
    uint32_t n;
    double gamma;
    uint32_t t;  // floor((n - 1 + ceil(gamma n)) / 2) + 1, capped at n - 1;
                 // 0.14 * 100 is 14.000000000000002 in double, meant as 14
  };
  for (const Case& c : {Case{2, 0, 1}, Case{3, 0, 2}, Case{5, 0, 3},
                        Case{20, 0, 10}, Case{20, 0.05, 11}, Case{20, 0.1, 11},
                        Case{5, 0.3, 4}, Case{100, 0.14, 57}}) {
    GraphOptions options;
    options.adversary_rate = c.gamma;
    absl::StatusOr<GraphParameters> params =
        ChooseGraphParameters(c.n, options);
    ASSERT_TRUE(params.ok()) << params.status();
    EXPECT_TRUE(params->complete) << "n=" << c.n;
    EXPECT_EQ(params->degree, c.n - 1);
    EXPECT_EQ(params->threshold, c.t) << "n=" << c.n << " gamma=" << c.gamma;
  }
}

TEST(ChooseGraphParametersTest, SparseParametersMeetTheBoundsAndAreMinimal) {
  struct Case {
    int n;
    double delta, gamma;
    int sigma = 40, eta = 20;
  };
  std::vector<Case> cases;
  for (int n : {1000, 10000}) {
    for (double delta : {0.1, 0.2, 0.3}) {
      for (double gamma : {0.0, 0.02, 0.05}) cases.push_back({n, delta, gamma});
    }
  }
  cases.push_back({10000, 0.1, 0.05, 60, 30});  // 2^-60-size tails
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << "n=" << c.n << " delta=" << c.delta << " gamma=" << c.gamma
                 << " sigma=" << c.sigma);
    GraphOptions options;
    options.dropout_rate = c.delta;
    options.adversary_rate = c.gamma;
    options.security_bits = c.sigma;
    options.correctness_bits = c.eta;
    absl::StatusOr<GraphParameters> params =
        ChooseGraphParameters(c.n, options);
    ASSERT_TRUE(params.ok()) << params.status();
    const int k = params->degree, t = params->threshold;
    ASSERT_FALSE(params->complete);
    ASSERT_LT(k, c.n - 1);
    EXPECT_EQ(k % 2, 0);
    ASSERT_GE(t, 1);
    ASSERT_LE(t, k);
    const Bounds bounds(c.n, options);
    EXPECT_TRUE(bounds.Secure(k, t)) << "k=" << k << " t=" << t;
    EXPECT_FALSE(bounds.Secure(k, t - 1))
        << "t is not the smallest secure threshold";
    EXPECT_TRUE(bounds.Correct(k, t)) << "k=" << k << " t=" << t;
    EXPECT_FALSE(bounds.Isolated(k)) << "k=" << k;
    if (k >= 4) {
      EXPECT_FALSE(bounds.Feasible(k - 2))
          << "k - 2 = " << k - 2 << " works too";
    }
  }
}

TEST(ChooseGraphParametersTest, MoreDropoutNeverLowersTheDegree) {
  for (uint32_t n : {100u, 1000u, 10000u, 100000u}) {
    for (double gamma : {0.0, 0.05}) {
      uint32_t previous = 0;
      for (double delta = 0; delta < 0.45; delta += 0.05) {
        GraphOptions options;
        options.dropout_rate = delta;
        options.adversary_rate = gamma;
        absl::StatusOr<GraphParameters> params =
            ChooseGraphParameters(n, options);
        ASSERT_TRUE(params.ok()) << params.status();
        EXPECT_GE(params->degree, previous)
            << "n=" << n << " gamma=" << gamma << " delta=" << delta;
        previous = params->degree;
      }
    }
  }
}

TEST(ChooseGraphParametersTest, RefusesBadOptionsNamingTheField) {
  struct Case {
    GraphOptions options;
    std::string field;
  };
  std::vector<Case> cases;
  auto add = [&cases](auto set, const std::string& field) {
    GraphOptions options;
    set(options);
    cases.push_back({options, field});
  };
  add([](GraphOptions& o) { o.dropout_rate = -0.1; }, "dropout_rate");
  add([](GraphOptions& o) { o.dropout_rate = 1.0; }, "dropout_rate");
  add([](GraphOptions& o) { o.dropout_rate = std::nan(""); }, "dropout_rate");
  add([](GraphOptions& o) { o.adversary_rate = -0.01; }, "adversary_rate");
  add([](GraphOptions& o) { o.adversary_rate = 1.0; }, "adversary_rate");
  add([](GraphOptions& o) { o.dropout_rate = 0.6, o.adversary_rate = 0.4; },
      "dropout_rate + adversary_rate");
  add([](GraphOptions& o) { o.security_bits = 0; }, "security_bits");
  add([](GraphOptions& o) { o.security_bits = 257; }, "security_bits");
  add([](GraphOptions& o) { o.correctness_bits = 0; }, "correctness_bits");
  add([](GraphOptions& o) { o.correctness_bits = -3; }, "correctness_bits");
  for (const Case& c : cases) {
    absl::Status validated = c.options.Validate();
    ASSERT_FALSE(validated.ok()) << c.field;
    EXPECT_EQ(validated.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(validated), HasSubstr(c.field));
    absl::StatusOr<GraphParameters> params =
        ChooseGraphParameters(1000, c.options);
    ASSERT_FALSE(params.ok()) << c.field;
    EXPECT_THAT(Message(params.status()), HasSubstr(c.field));
  }
  EXPECT_TRUE(GraphOptions().Validate().ok());
  for (uint32_t n : {0u, 1u}) {
    absl::StatusOr<GraphParameters> params =
        ChooseGraphParameters(n, GraphOptions());
    ASSERT_FALSE(params.ok());
    EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(params.status()), HasSubstr("num_clients"));
  }
}

TEST(ChooseGraphParametersTest, PrintsTheParameterTable) {
  std::ostringstream table;
  table << "     n  delta  gamma  ->      k      t  complete  ms\n";
  for (uint32_t n : {100u, 500u, 1000u, 10000u, 100000u}) {
    for (double delta : {0.0, 0.1, 0.3}) {
      for (double gamma : {0.0, 0.05}) {
        GraphOptions options;
        options.dropout_rate = delta;
        options.adversary_rate = gamma;
        const auto start = std::chrono::steady_clock::now();
        absl::StatusOr<GraphParameters> params =
            ChooseGraphParameters(n, options);
        const double ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count();
        ASSERT_TRUE(params.ok()) << params.status();
        table << std::setw(6) << n << "  " << std::setw(5) << delta << "  "
              << std::setw(5) << gamma << "  -> " << std::setw(6)
              << params->degree << " " << std::setw(6) << params->threshold
              << "  " << std::setw(8) << (params->complete ? "yes" : "no")
              << "  " << std::fixed << std::setprecision(2) << ms
              << std::defaultfloat << "\n";
      }
    }
  }
  std::cout << table.str();
  RecordProperty("table", table.str());
}

}  // namespace
}  // namespace shoal::secagg
