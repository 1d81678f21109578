// Tests of RdpAccountant and SubsampledGaussianRdp against values computed
// independently: golden values from tests/golden/rdp_golden.py (60-digit
// mpmath: exact binomials, and numerical integration of A_alpha's definition
// for fractional orders), closed forms for q = 1 and for the regime where
// one term dominates, and figures published with TF Privacy.
#include "strategies/privacy_accountant.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal {
namespace {

using json = nlohmann::json;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Epsilon returns GetEpsilon(delta)'s guarantee (the test fails, and the
// guarantee is NaN, on error).
RdpAccountant::Guarantee Epsilon(const RdpAccountant& accountant,
                                 double delta) {
  absl::StatusOr<RdpAccountant::Guarantee> g = accountant.GetEpsilon(delta);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *g : RdpAccountant::Guarantee{kNaN, kNaN, kNaN};
}

// EpsilonFor composes `steps` rounds of (z, q) on a fresh accountant with
// the default orders and returns epsilon at `delta`.
double EpsilonFor(double z, double q, int64_t steps, double delta) {
  RdpAccountant accountant;
  EXPECT_TRUE(accountant.AddSubsampledGaussian(z, q, steps).ok());
  return Epsilon(accountant, delta).epsilon;
}

// OlderConversionEpsilon is Mironov 2017's conversion (arXiv:1702.07476,
// Proposition 3), min over orders of rdp - log(delta) / (alpha - 1), which
// figures published before 2020 used.
double OlderConversionEpsilon(const RdpAccountant& accountant, double delta) {
  double best = kInf;
  for (size_t i = 0; i < accountant.orders().size(); ++i) {
    const double alpha = accountant.orders()[i];
    best = std::min(best, accountant.rdp()[i] - std::log(delta) / (alpha - 1));
  }
  return best;
}

// ---------------------------------------------------------------------------
// Golden data: tests/golden/rdp_golden.json, from rdp_golden.py.

const json& Golden() {
  static const json* const golden = [] {
    std::ifstream in(SHOAL_SOURCE_DIR "/tests/golden/rdp_golden.json");
    EXPECT_TRUE(in.good()) << "cannot open rdp_golden.json";
    return new json(in.good() ? json::parse(in) : json::object());
  }();
  return *golden;
}

TEST(PrivacyAccountantRdpTest, MatchesMpmathReference) {
  const json& cases = Golden().at("rdp");
  ASSERT_GE(cases.size(), 10u);
  for (const json& c : cases) {
    const double q = c.at("q").get<double>();
    const double z = c.at("noise_multiplier").get<double>();
    const double alpha = c.at("order").get<double>();
    const double want = c.at("rdp").get<double>();
    EXPECT_NEAR(SubsampledGaussianRdp(q, z, alpha), want, 1e-9 * want)
        << "q=" << q << " z=" << z << " alpha=" << alpha;
  }
}

TEST(PrivacyAccountantTest, EpsilonMatchesMpmathReference) {
  const json& cases = Golden().at("epsilon");
  ASSERT_GE(cases.size(), 5u);
  for (const json& c : cases) {
    RdpAccountant accountant;
    for (const json& m : c.at("mechanisms")) {
      ASSERT_TRUE(accountant
                      .AddSubsampledGaussian(
                          m.at("noise_multiplier").get<double>(),
                          m.at("q").get<double>(), m.at("steps").get<int64_t>())
                      .ok());
    }
    const double delta = c.at("delta").get<double>();
    const RdpAccountant::Guarantee g = Epsilon(accountant, delta);
    const double want = c.at("epsilon").get<double>();
    EXPECT_NEAR(g.epsilon, want, 1e-9 * want) << c.dump();
    EXPECT_EQ(g.order, c.at("order").get<double>()) << c.dump();
    EXPECT_EQ(g.delta, delta);
  }
}

// ---------------------------------------------------------------------------
// Closed forms.

TEST(PrivacyAccountantRdpTest, FullSamplingIsTheGaussianMechanism) {
  for (double z : {0.3, 1.0, 1.1, 4.0}) {
    for (double alpha : {1.25, 2.0, 3.5, 32.0, 512.0}) {
      EXPECT_EQ(SubsampledGaussianRdp(1.0, z, alpha), alpha / (2 * z * z))
          << "z=" << z << " alpha=" << alpha;
    }
  }
  EXPECT_EQ(SubsampledGaussianRdp(1.0, 2.0, 8.0), 1.0);
}

// As q -> 1 both series tend to the Gaussian's alpha / (2 z^2).
TEST(PrivacyAccountantRdpTest, TendsToTheGaussianAsTheRateTendsToOne) {
  const double q = 1 - 1e-9;
  for (double alpha : {1.5, 2.0, 4.5, 16.0}) {
    const double gaussian = alpha / (2 * 1.5 * 1.5);
    EXPECT_NEAR(SubsampledGaussianRdp(q, 1.5, alpha), gaussian, 1e-6 * gaussian)
        << "alpha=" << alpha;
  }
}

// With little noise and a large order, the term k = alpha of the expansion
// dominates A_alpha by a factor exp((alpha - 1) / z^2), so
//   RDP = (alpha log q + (alpha^2 - alpha) / (2 z^2)) / (alpha - 1)
// to double precision, where A_alpha itself (e^3e5 here) overflows.
TEST(PrivacyAccountantRdpTest, LargeOrdersWithLittleNoiseStayFinite) {
  const double z = 0.3;
  for (double q : {1e-3, 0.2, 0.9}) {
    for (double alpha : {128.0, 130.5, 512.0}) {
      const double want =
          (alpha * std::log(q) + (alpha * alpha - alpha) / (2 * z * z)) /
          (alpha - 1);
      EXPECT_NEAR(SubsampledGaussianRdp(q, z, alpha), want, 1e-12 * want)
          << "q=" << q << " alpha=" << alpha;
    }
  }
}

// For q = 1, epsilon is the conversion's minimum over the grid of
//   steps * alpha / (2 z^2) + log1p(-1/alpha)
//   - (log(delta) + log(alpha)) / (alpha - 1).
TEST(PrivacyAccountantTest, FullSamplingEpsilonIsTheClosedFormMinimum) {
  for (double z : {0.8, 2.0, 5.0}) {
    for (int64_t steps : {1, 10, 500}) {
      double want = kInf;
      double want_order = 0;
      for (double alpha : RdpAccountant::DefaultOrders()) {
        const double eps = steps * alpha / (2 * z * z) +
                           std::log1p(-1 / alpha) -
                           (std::log(1e-5) + std::log(alpha)) / (alpha - 1);
        if (eps < want) {
          want = eps;
          want_order = alpha;
        }
      }
      RdpAccountant accountant;
      ASSERT_TRUE(accountant.AddSubsampledGaussian(z, 1.0, steps).ok());
      const RdpAccountant::Guarantee g = Epsilon(accountant, 1e-5);
      EXPECT_NEAR(g.epsilon, want, 1e-12 * want)
          << "z=" << z << " steps=" << steps;
      EXPECT_EQ(g.order, want_order) << "z=" << z << " steps=" << steps;
    }
  }
  // By hand, one order: rdp = 2 / (2 * 1^2) = 1, so
  // eps = 1 + log(1/2) - (log(1e-5) + log 2) / 1 = 1 - 2 log 2 + 5 log 10.
  RdpAccountant one_order({2.0});
  ASSERT_TRUE(one_order.AddSubsampledGaussian(1.0, 1.0).ok());
  EXPECT_NEAR(Epsilon(one_order, 1e-5).epsilon, 11.126631103850338, 1e-12);
}

// ---------------------------------------------------------------------------
// Figures published with TF Privacy (github.com/tensorflow/privacy).

// tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py,
// test_compute_dp_sgd_privacy: (n, batch_size, noise_multiplier, epochs,
// delta) -> (epsilon, order), with q = batch_size / n, steps =
// ceil(epochs * n / batch_size), this class's default orders (TF Privacy's)
// and the conversion of Canonne et al. 2020. TF checks 7 decimal places.
TEST(PrivacyAccountantTest, MatchesTfPrivacyComputeDpSgdPrivacyTest) {
  struct Figure {
    double n, batch_size, noise_multiplier, epochs, delta, epsilon, order;
  };
  for (const Figure& f : {
           Figure{60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19},
           Figure{100000, 100, 1.0, 30, 1e-7, 1.4154988495444845, 13},
           Figure{100000000, 1024, 0.1, 10, 1e-7, 5907982.31138195, 1.25},
       }) {
    const auto steps =
        static_cast<int64_t>(std::ceil(f.epochs * f.n / f.batch_size));
    RdpAccountant accountant;
    ASSERT_TRUE(accountant
                    .AddSubsampledGaussian(f.noise_multiplier,
                                           f.batch_size / f.n, steps)
                    .ok());
    const RdpAccountant::Guarantee g = Epsilon(accountant, f.delta);
    EXPECT_NEAR(g.epsilon, f.epsilon, 1e-10 * f.epsilon) << "n=" << f.n;
    EXPECT_EQ(g.order, f.order) << "n=" << f.n;
  }
}

// tensorflow_privacy/privacy/analysis/rdp_accountant_test.py:
// test_compute_rdp_scalar, compute_rdp(q=0.1, z=2, steps=10, order=5) =
// 0.07737 (5 places), and test_compute_rdp_sequence, compute_rdp(0.01, 2.5,
// 50, [1.5, 2.5, 5, 50, 100]) within 1e-5.
TEST(PrivacyAccountantTest, MatchesTfPrivacyComputeRdpTest) {
  RdpAccountant scalar({5.0});
  ASSERT_TRUE(scalar.AddSubsampledGaussian(2.0, 0.1, 10).ok());
  EXPECT_NEAR(scalar.rdp()[0], 0.07737, 5e-6);

  RdpAccountant sequence({1.5, 2.5, 5, 50, 100});
  ASSERT_TRUE(sequence.AddSubsampledGaussian(2.5, 0.01, 50).ok());
  const std::vector<double> want = {0.00065, 0.001085, 0.00218075, 0.023846,
                                    167.416307};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(sequence.rdp()[i], want[i], 1e-5)
        << "order " << sequence.orders()[i];
  }
}

// rdp_accountant_test.py, test_get_privacy_spent_check_target_delta: a
// constant RDP of 1.1 at orders 2..32 (pure DP) gives epsilon 1.32783806176
// at delta 1e-5, from the largest order; and a Gaussian with z = 4.530877117
// over the orders 1.001, 1.002, ..., 99.999 is (1, 1e-6)-DP.
TEST(PrivacyAccountantTest, MatchesTfPrivacyGetPrivacySpentTest) {
  std::vector<double> orders;
  for (int a = 2; a <= 32; ++a) orders.push_back(a);
  RdpAccountant constant(orders);
  ASSERT_TRUE(constant.Restore(std::vector<double>(orders.size(), 1.1)).ok());
  const RdpAccountant::Guarantee g = Epsilon(constant, 1e-5);
  EXPECT_NEAR(g.epsilon, 1.32783806176, 1e-10);
  EXPECT_EQ(g.order, 32);

  std::vector<double> fine;
  for (int i = 1001; i < 100000; ++i) fine.push_back(0.001 * i);
  RdpAccountant gaussian(fine);
  ASSERT_TRUE(gaussian.AddSubsampledGaussian(4.530877117, 1.0).ok());
  EXPECT_NEAR(Epsilon(gaussian, 1e-6).epsilon, 1.0, 5e-8);
}

// tutorials/README.md (MNIST DP-SGD tutorial): "compute_dp_sgd_privacy.py
// --N=60000 --batch_size=256 --noise_multiplier=1.1 --epochs=60
// --delta=1e-5 ... satisfies differential privacy with eps = 3.01", printed
// to 3 significant digits, with the older conversion of the time. The
// current conversion gives a smaller epsilon for the same RDP.
TEST(PrivacyAccountantTest,
     MatchesTfPrivacyMnistTutorialWithTheOlderConversion) {
  RdpAccountant accountant;
  const int64_t steps = 14063;  // ceil(60 * 60000 / 256)
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.1, 256.0 / 60000, steps).ok());
  const double older = OlderConversionEpsilon(accountant, 1e-5);
  EXPECT_NEAR(older, 3.01, 0.005);
  EXPECT_LT(Epsilon(accountant, 1e-5).epsilon, older - 0.3);
}

// ---------------------------------------------------------------------------
// Behaviour.

TEST(PrivacyAccountantTest, EpsilonGrowsWithStepsAndRateAndFallsWithNoise) {
  double previous = 0;
  for (int64_t steps : {1, 10, 100, 1000, 10000}) {
    const double eps = EpsilonFor(1.0, 0.01, steps, 1e-5);
    EXPECT_GT(eps, previous) << "steps=" << steps;
    previous = eps;
  }
  previous = 0;
  for (double q : {1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0}) {
    const double eps = EpsilonFor(1.0, q, 100, 1e-5);
    EXPECT_GT(eps, previous) << "q=" << q;
    previous = eps;
  }
  previous = kInf;
  for (double z : {0.5, 0.8, 1.0, 2.0, 4.0, 10.0}) {
    const double eps = EpsilonFor(z, 0.01, 100, 1e-5);
    EXPECT_LT(eps, previous) << "z=" << z;
    previous = eps;
  }
  // And falls as delta grows.
  RdpAccountant accountant;
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.0, 0.01, 1000).ok());
  EXPECT_GT(Epsilon(accountant, 1e-8).epsilon,
            Epsilon(accountant, 1e-5).epsilon);
}

TEST(PrivacyAccountantTest, NothingComposedIsZeroEpsilon) {
  RdpAccountant accountant;
  EXPECT_EQ(Epsilon(accountant, 1e-5).epsilon, 0.0);
  EXPECT_EQ(accountant.rdp(),
            std::vector<double>(accountant.orders().size(), 0.0));
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.0, 0.1, 0).ok());
  EXPECT_EQ(Epsilon(accountant, 1e-5).epsilon, 0.0);
}

TEST(PrivacyAccountantTest,
     EpsilonAfterIsWhatAddingWouldGiveAndChangesNothing) {
  RdpAccountant accountant;
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.0, 0.01, 100).ok());
  const std::vector<double> before = accountant.rdp();
  const double eps_before = Epsilon(accountant, 1e-5).epsilon;

  absl::StatusOr<RdpAccountant::Guarantee> after =
      accountant.EpsilonAfter(0.8, 0.02, 5, 1e-5);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(accountant.rdp(), before);
  EXPECT_EQ(Epsilon(accountant, 1e-5).epsilon, eps_before);
  EXPECT_GT(after->epsilon, eps_before);

  RdpAccountant added = accountant;
  ASSERT_TRUE(added.AddSubsampledGaussian(0.8, 0.02, 5).ok());
  const RdpAccountant::Guarantee g = Epsilon(added, 1e-5);
  EXPECT_EQ(after->epsilon, g.epsilon);
  EXPECT_EQ(after->order, g.order);
  EXPECT_EQ(after->delta, 1e-5);
}

TEST(PrivacyAccountantTest, StepsAddUpWhetherComposedAtOnceOrOneByOne) {
  RdpAccountant at_once;
  RdpAccountant one_by_one;
  ASSERT_TRUE(at_once.AddSubsampledGaussian(1.2, 0.05, 50).ok());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(one_by_one.AddSubsampledGaussian(1.2, 0.05).ok());
  }
  for (size_t i = 0; i < at_once.orders().size(); ++i) {
    EXPECT_NEAR(one_by_one.rdp()[i], at_once.rdp()[i],
                1e-12 * at_once.rdp()[i]);
  }
}

TEST(PrivacyAccountantTest, RestoreRoundTripsACheckpoint) {
  RdpAccountant accountant;
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.0, 0.01, 300).ok());
  RdpAccountant restored;
  ASSERT_TRUE(restored.Restore(accountant.rdp()).ok());
  EXPECT_EQ(restored.rdp(), accountant.rdp());
  EXPECT_EQ(Epsilon(restored, 1e-5).epsilon, Epsilon(accountant, 1e-5).epsilon);
}

// An order whose RDP is infinite drops out of the minimum; if all are,
// epsilon is infinite (no guarantee).
TEST(PrivacyAccountantTest, InfiniteRdpOrdersDropOut) {
  RdpAccountant accountant({2.0, 3.0, 4.0});
  ASSERT_TRUE(accountant.Restore({kInf, 0.5, kInf}).ok());
  RdpAccountant only_three({3.0});
  ASSERT_TRUE(only_three.Restore({0.5}).ok());
  const RdpAccountant::Guarantee g = Epsilon(accountant, 1e-5);
  EXPECT_EQ(g.epsilon, Epsilon(only_three, 1e-5).epsilon);
  EXPECT_EQ(g.order, 3.0);
  EXPECT_TRUE(std::isfinite(g.epsilon));

  ASSERT_TRUE(accountant.Restore({kInf, kInf, kInf}).ok());
  const RdpAccountant::Guarantee none = Epsilon(accountant, 1e-5);
  EXPECT_EQ(none.epsilon, kInf);
  EXPECT_TRUE(std::isnan(none.order));
  // Composing more keeps it infinite.
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.0, 0.1).ok());
  EXPECT_EQ(Epsilon(accountant, 1e-5).epsilon, kInf);
}

// ExpectRefused checks that `status` is InvalidArgument naming `name`.
void ExpectRefused(const absl::Status& status, const std::string& name) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(name), absl::string_view::npos) << status;
}

TEST(PrivacyAccountantTest, RefusesBadArgumentsNamingThem) {
  RdpAccountant accountant;
  ASSERT_TRUE(accountant.AddSubsampledGaussian(1.0, 0.01, 10).ok());
  const std::vector<double> before = accountant.rdp();
  for (double z : {0.0, -1.0, kNaN, kInf}) {
    ExpectRefused(accountant.AddSubsampledGaussian(z, 0.01),
                  "noise_multiplier");
    ExpectRefused(accountant.EpsilonAfter(z, 0.01, 1, 1e-5).status(),
                  "noise_multiplier");
  }
  for (double q : {0.0, -0.1, 1.5, kNaN}) {
    ExpectRefused(accountant.AddSubsampledGaussian(1.0, q), "sampling_rate");
    ExpectRefused(accountant.EpsilonAfter(1.0, q, 1, 1e-5).status(),
                  "sampling_rate");
  }
  ExpectRefused(accountant.AddSubsampledGaussian(1.0, 0.01, -1), "steps");
  ExpectRefused(accountant.EpsilonAfter(1.0, 0.01, -1, 1e-5).status(), "steps");
  for (double delta : {0.0, 1.0, -1e-5, 2.0, kNaN}) {
    ExpectRefused(accountant.GetEpsilon(delta).status(), "delta");
    ExpectRefused(accountant.EpsilonAfter(1.0, 0.01, 1, delta).status(),
                  "delta");
  }
  ExpectRefused(accountant.Restore({1.0, 2.0}), "rdp");
  std::vector<double> negative = before;
  negative[3] = -0.5;
  ExpectRefused(accountant.Restore(negative), "rdp[3]");
  negative[3] = kNaN;
  ExpectRefused(accountant.Restore(negative), "rdp[3]");
  EXPECT_EQ(accountant.rdp(), before);  // nothing refused changed anything
}

TEST(PrivacyAccountantTest, BadOrdersAreReportedByEveryMethod) {
  for (const std::vector<double>& orders :
       {std::vector<double>{2.0, 1.0}, std::vector<double>{2.0, kInf},
        std::vector<double>{2.0, kNaN}, std::vector<double>{2.0, 0.5}}) {
    RdpAccountant accountant(orders);
    ExpectRefused(accountant.AddSubsampledGaussian(1.0, 0.1), "orders[1]");
    ExpectRefused(accountant.GetEpsilon(1e-5).status(), "orders[1]");
    ExpectRefused(accountant.EpsilonAfter(1.0, 0.1, 1, 1e-5).status(),
                  "orders[1]");
    ExpectRefused(accountant.Restore({0.0, 0.0}), "orders[1]");
  }
  ExpectRefused(RdpAccountant(std::vector<double>{}).GetEpsilon(1e-5).status(),
                "orders");
}

TEST(PrivacyAccountantRdpTest, ArgumentsOutOfRangeGiveNaN) {
  EXPECT_TRUE(std::isnan(SubsampledGaussianRdp(0.0, 1.0, 2.0)));
  EXPECT_TRUE(std::isnan(SubsampledGaussianRdp(1.5, 1.0, 2.0)));
  EXPECT_TRUE(std::isnan(SubsampledGaussianRdp(0.1, 0.0, 2.0)));
  EXPECT_TRUE(std::isnan(SubsampledGaussianRdp(0.1, 1.0, 1.0)));
  EXPECT_EQ(SubsampledGaussianRdp(0.1, 1.0, kInf), kInf);
}

}  // namespace
}  // namespace shoal
