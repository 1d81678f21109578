#include "strategies/privacy_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace shoal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A fractional order's series stops, past k = alpha, once its terms fall
// below exp(-kTailLog) ~ 1e-16 of the sum: they alternate and shrink, so
// what is left is smaller than the last term, below float64 resolution.
constexpr double kTailLog = 37.0;
// A cap on the series' terms, far above what any order > 1 needs.
constexpr int64_t kMaxSeriesTerms = 10'000'000;

// LogAddExp returns log(exp(a) + exp(b)).
double LogAddExp(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == -kInf) return a;
  return a + std::log1p(std::exp(b - a));
}

// LogSubExp returns log(exp(a) - exp(b)); NaN when a < b.
double LogSubExp(double a, double b) {
  if (b == -kInf) return a;
  if (a < b) return kNaN;
  if (a == b) return -kInf;
  return a + std::log(-std::expm1(b - a));
}

// LogExpm1 returns log(exp(x) - 1) for x > 0, also where exp(x) overflows.
double LogExpm1(double x) { return x + std::log(-std::expm1(-x)); }

// LogErfc returns log(erfc(x)), also where erfc(x) underflows (x > ~26.5):
// there, the asymptotic series erfc(x) = exp(-x^2) / (x sqrt(pi)) *
// sum_n (-1)^n (2n - 1)!! / (2 x^2)^n, whose 11th term is below 1e-23 for
// x >= 25.
double LogErfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  const double r = 1.0 / (2.0 * x * x);
  double term = 1.0;
  double sum = 1.0;
  for (int n = 1; n <= 10; ++n) {
    term *= -(2.0 * n - 1.0) * r;
    sum += term;
  }
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log(sum);
}

// LogAInteger returns log(A_alpha) for integer alpha >= 2 and q < 1. The
// binomial expansion A = sum_k C(alpha, k) q^k (1-q)^(alpha-k)
// exp((k^2 - k) / (2 z^2)) is summed as 1 + sum_{k >= 2} ... (exp(...) - 1),
// since the binomial weights sum to 1 and the k = 0, 1 terms have exp(0):
// every term is positive, and small q loses no precision to cancellation.
double LogAInteger(double q, double z, int64_t alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double inv_2z2 = 1.0 / (2.0 * z * z);
  double log_binom = 0.0;  // log C(alpha, k)
  double log_a_minus_1 = -kInf;
  for (int64_t k = 1; k <= alpha; ++k) {
    log_binom += std::log(static_cast<double>(alpha - k + 1)) -
                 std::log(static_cast<double>(k));
    if (k < 2) continue;
    const double kd = static_cast<double>(k);
    const double log_term = log_binom + kd * log_q +
                            (static_cast<double>(alpha) - kd) * log_1mq +
                            LogExpm1((kd * kd - kd) * inv_2z2);
    log_a_minus_1 = LogAddExp(log_a_minus_1, log_term);
  }
  return LogAddExp(0.0, log_a_minus_1);
}

// LogAFractional returns log(A_alpha) for fractional alpha > 1 and q < 1,
// by Mironov, Talwar, Zhang 2019, Section 3.3: A = A0 + A1, the integrals
// below and above z0, each a series over k of C(alpha, k) times
//   A0: q^k (1-q)^(alpha-k) exp((k^2 - k) / (2 z^2)) erfc((k - z0) / s) / 2
//   A1: q^j (1-q)^k exp((j^2 - j) / (2 z^2)) erfc((z0 - j) / s) / 2,
// j = alpha - k, s = sqrt(2) z. Past k = alpha + 1, C(alpha, k) changes sign
// at every k.
double LogAFractional(double q, double z, double alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double inv_2z2 = 1.0 / (2.0 * z * z);
  const double sqrt2_z = std::sqrt(2.0) * z;
  const double z0 = z * z * (log_1mq - log_q) + 0.5;
  double log_a0 = -kInf;
  double log_a1 = -kInf;
  double log_binom = 0.0;  // log |C(alpha, k)|
  bool positive = true;    // sign of C(alpha, k)
  for (int64_t k = 0; k < kMaxSeriesTerms; ++k) {
    const double kd = static_cast<double>(k);
    if (k > 0) {
      const double ratio = (alpha - (kd - 1.0)) / kd;  // C(a, k) / C(a, k-1)
      log_binom += std::log(std::fabs(ratio));
      if (ratio < 0) positive = !positive;
    }
    const double j = alpha - kd;
    const double log_s0 = log_binom + kd * log_q + j * log_1mq +
                          (kd * kd - kd) * inv_2z2 +
                          LogErfc((kd - z0) / sqrt2_z) - M_LN2;
    const double log_s1 = log_binom + j * log_q + kd * log_1mq +
                          (j * j - j) * inv_2z2 + LogErfc((z0 - j) / sqrt2_z) -
                          M_LN2;
    if (positive) {
      log_a0 = LogAddExp(log_a0, log_s0);
      log_a1 = LogAddExp(log_a1, log_s1);
    } else {
      log_a0 = LogSubExp(log_a0, log_s0);
      log_a1 = LogSubExp(log_a1, log_s1);
    }
    if (std::isnan(log_a0) || std::isnan(log_a1)) return kNaN;
    if (kd > alpha &&
        std::max(log_s0, log_s1) < LogAddExp(log_a0, log_a1) - kTailLog) {
      break;
    }
  }
  return LogAddExp(log_a0, log_a1);
}

// EpsilonFromRdp is the conversion of the header's comment; `delta` in
// (0, 1), orders > 1.
RdpAccountant::Guarantee EpsilonFromRdp(const std::vector<double>& orders,
                                        const std::vector<double>& rdp,
                                        double delta) {
  RdpAccountant::Guarantee best{kInf, delta, kNaN};
  const double log_delta = std::log(delta);
  for (size_t i = 0; i < orders.size(); ++i) {
    const double alpha = orders[i];
    const double r = rdp[i];
    if (!(r < kInf)) continue;
    double epsilon;
    if (delta * delta + std::expm1(-r) > 0) {
      epsilon = 0.0;  // sqrt(1 - exp(-KL)) <= sqrt(1 - exp(-r)) < delta
    } else {
      epsilon = r + std::log1p(-1.0 / alpha) -
                (log_delta + std::log(alpha)) / (alpha - 1.0);
    }
    if (epsilon < best.epsilon) {
      best.epsilon = epsilon;
      best.order = alpha;
    }
  }
  best.epsilon = std::max(best.epsilon, 0.0);
  return best;
}

absl::Status CheckDelta(double delta) {
  if (delta > 0.0 && delta < 1.0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("delta must be in (0, 1), got ", delta));
}

}  // namespace

double SubsampledGaussianRdp(double q, double noise_multiplier, double alpha) {
  const double z = noise_multiplier;
  if (!(q > 0.0 && q <= 1.0) || !(z > 0.0) || !(alpha > 1.0)) return kNaN;
  if (q == 1.0) return alpha / (2.0 * z * z);
  if (alpha == kInf) return kInf;
  const double log_a = alpha == std::floor(alpha) && alpha <= 9.0e15
                           ? LogAInteger(q, z, static_cast<int64_t>(alpha))
                           : LogAFractional(q, z, alpha);
  // Rounding can leave log(A) a hair below its true value, which is >= 0.
  if (std::isnan(log_a)) return kInf;
  return std::max(log_a, 0.0) / (alpha - 1.0);
}

std::vector<double> RdpAccountant::DefaultOrders() {
  std::vector<double> orders = {1.25, 1.5, 1.75, 2.0, 2.25,
                                2.5,  3.0, 3.5,  4.0, 4.5};
  for (int a = 5; a <= 63; ++a) orders.push_back(a);
  for (double a : {128.0, 256.0, 512.0}) orders.push_back(a);
  return orders;
}

RdpAccountant::RdpAccountant() : RdpAccountant(DefaultOrders()) {}

RdpAccountant::RdpAccountant(std::vector<double> orders)
    : orders_(std::move(orders)), rdp_(orders_.size(), 0.0) {
  if (orders_.empty()) {
    orders_status_ = absl::InvalidArgumentError("orders: none given");
  }
  for (size_t i = 0; i < orders_.size(); ++i) {
    if (!(orders_[i] > 1.0 && orders_[i] < kInf)) {
      orders_status_ = absl::InvalidArgumentError(absl::StrCat(
          "orders[", i, "] must be finite and > 1, got ", orders_[i]));
      break;
    }
  }
}

absl::StatusOr<std::vector<double>> RdpAccountant::StepRdp(
    double noise_multiplier, double sampling_rate, int64_t steps) const {
  SHOAL_RETURN_IF_ERROR(orders_status_);
  if (!(noise_multiplier > 0.0 && noise_multiplier < kInf)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "noise_multiplier must be finite and > 0, got ", noise_multiplier));
  }
  if (!(sampling_rate > 0.0 && sampling_rate <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling_rate must be in (0, 1], got ", sampling_rate));
  }
  if (steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps must be >= 0, got ", steps));
  }
  std::vector<double> rdp(orders_.size(), 0.0);
  if (steps == 0) return rdp;
  for (size_t i = 0; i < orders_.size(); ++i) {
    rdp[i] = static_cast<double>(steps) *
             SubsampledGaussianRdp(sampling_rate, noise_multiplier, orders_[i]);
  }
  return rdp;
}

absl::Status RdpAccountant::AddSubsampledGaussian(double noise_multiplier,
                                                  double sampling_rate,
                                                  int64_t steps) {
  SHOAL_ASSIGN_OR_RETURN(std::vector<double> step,
                         StepRdp(noise_multiplier, sampling_rate, steps));
  for (size_t i = 0; i < rdp_.size(); ++i) rdp_[i] += step[i];
  return absl::OkStatus();
}

absl::StatusOr<RdpAccountant::Guarantee> RdpAccountant::GetEpsilon(
    double delta) const {
  SHOAL_RETURN_IF_ERROR(orders_status_);
  SHOAL_RETURN_IF_ERROR(CheckDelta(delta));
  return EpsilonFromRdp(orders_, rdp_, delta);
}

absl::StatusOr<RdpAccountant::Guarantee> RdpAccountant::EpsilonAfter(
    double noise_multiplier, double sampling_rate, int64_t steps,
    double delta) const {
  SHOAL_ASSIGN_OR_RETURN(std::vector<double> rdp,
                         StepRdp(noise_multiplier, sampling_rate, steps));
  SHOAL_RETURN_IF_ERROR(CheckDelta(delta));
  for (size_t i = 0; i < rdp_.size(); ++i) rdp[i] += rdp_[i];
  return EpsilonFromRdp(orders_, rdp, delta);
}

absl::Status RdpAccountant::Restore(std::vector<double> rdp) {
  SHOAL_RETURN_IF_ERROR(orders_status_);
  if (rdp.size() != orders_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rdp has ", rdp.size(), " values for ", orders_.size(), " orders"));
  }
  for (size_t i = 0; i < rdp.size(); ++i) {
    if (!(rdp[i] >= 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("rdp[", i, "] must be >= 0, got ", rdp[i]));
    }
  }
  rdp_ = std::move(rdp);
  return absl::OkStatus();
}

}  // namespace shoal
