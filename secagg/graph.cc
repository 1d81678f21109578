#include "secagg/graph.h"

#include <math.h>  // lgamma_r

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace shoal::secagg {
namespace {

// Tail terms this many nats (about 2^-72) below the target are dropped: at
// most k of them, each smaller than the last one kept, so together they
// weigh less than k e^-50 eps, far below double precision for any k < 2^32.
constexpr double kNegligibleNats = 50.0;

// LogBinomialPmf returns log P[X = j] for X ~ Binomial(k, p), given log p
// and log(1 - p), with 0 < p < 1. lgamma rather than a running sum of logs,
// whose error grows with k; and lgamma_r (glibc) rather than std::lgamma,
// which writes the global signgam, a data race between threads.
double LogBinomialPmf(uint32_t k, uint32_t j, double log_p, double log_q) {
  int sign = 0;  // always +1 here: every argument is >= 1
  return lgamma_r(k + 1.0, &sign) - lgamma_r(j + 1.0, &sign) -
         lgamma_r(k - j + 1.0, &sign) + j * log_p + (k - j) * log_q;
}

// RareTailStart returns the smallest m in [0, k + 1] with P[X >= m] <= eps
// for X ~ Binomial(k, p), p in [0, 1], eps = exp(log_eps) < 1.
//
// Summing the whole tail in log space costs O(k) logs and exps per call,
// too slow when the search below visits many k. Instead every term is
// taken relative to the mode's, pmf(j) / pmf(mode), by the exact ratio
// pmf(j + 1) / pmf(j) = (k - j) / (j + 1) * p / (1 - p); only the mode
// needs lgamma. Going up from the mode until the terms are negligible
// visits O(sqrt(k)) terms, and then the tail is summed from the top down
// until it passes eps. Relative to the mode all values stay within double
// range: eps >= 2^-256 / 2^32 by GraphOptions::Validate, and
// pmf(mode) >= 1 / (k + 1).
uint32_t RareTailStart(uint32_t k, double p, double log_eps) {
  if (p <= 0) return 1;      // X == 0: P[X >= 0] = 1, P[X >= 1] = 0
  if (p >= 1) return k + 1;  // X == k
  const double log_p = std::log(p);
  const double log_q = std::log1p(-p);
  const double odds = std::exp(log_p - log_q);
  const uint32_t mode =
      static_cast<uint32_t>(std::min<double>(k, std::floor((k + 1.0) * p)));
  const double log_mode = LogBinomialPmf(k, mode, log_p, log_q);
  // The tail passes eps when the sum of relative terms passes `target`.
  const double target = std::exp(log_eps - log_mode);
  const double negligible = std::exp(log_eps - kNegligibleNats - log_mode);

  // relative[i] = pmf(mode + i) / pmf(mode).
  std::vector<double> relative = {1.0};
  for (uint32_t j = mode; j < k && relative.back() >= negligible; ++j) {
    relative.push_back(relative.back() *
                       (static_cast<double>(k - j) / (j + 1.0)) * odds);
  }
  double sum = 0;  // P[X >= j] / pmf(mode) for the current j
  for (size_t i = relative.size(); i-- > 0;) {
    sum += relative[i];
    if (sum > target) return mode + static_cast<uint32_t>(i) + 1;
  }
  // Only reached for eps > pmf(mode), never by ChooseGraphParameters (eps <
  // 1 / n there); kept so the function is right for any eps < 1.
  double term = 1.0;
  for (uint32_t j = mode; j > 0; --j) {
    // pmf(j - 1) / pmf(mode)
    term *= (static_cast<double>(j) / (k - j + 1.0)) / odds;
    sum += term;
    if (sum > target) return j;
  }
  return 0;
}

// TailAtMost returns whether P[X >= m] <= eps for X ~ Binomial(k, p), p in
// [0, 1], eps = exp(log_eps) < 1/2. Unlike RareTailStart it looks at one
// point, summing up from m only until the sum passes eps or the rest is
// negligible; a hopeless m (the common case while searching k near the
// feasible limit) is rejected after one term.
bool TailAtMost(uint32_t k, double p, uint64_t m, double log_eps) {
  if (m > k) return true;
  if (p <= 0) return m >= 1;  // X == 0
  if (p >= 1) return false;   // X == k >= m
  // floor(k p) is at most a median, so the tail from there holds >= 1/2.
  if (m <= std::floor(k * p)) return false;
  // From here on m >= the mode, floor((k + 1) p), so the terms only shrink.
  const double log_p = std::log(p);
  const double log_q = std::log1p(-p);
  const double odds = std::exp(log_p - log_q);
  const double log_first =
      LogBinomialPmf(k, static_cast<uint32_t>(m), log_p, log_q);
  if (log_first > log_eps) return false;
  // Relative to pmf(m); both may be +inf when pmf(m) underflows, which the
  // comparisons below handle (the tail is then negligible).
  const double target = std::exp(log_eps - log_first);
  const double negligible = std::exp(log_eps - kNegligibleNats - log_first);
  double term = 1.0, sum = 1.0;
  for (uint64_t j = m; j < k && term >= negligible; ++j) {
    term *= (static_cast<double>(k - j) / (j + 1.0)) * odds;
    sum += term;
    if (sum > target) return false;
  }
  return true;
}

// SparseThreshold returns t_min(k) if degree k meets security, correctness
// and isolation (see graph.h), or 0 if it does not.
uint32_t SparseThreshold(uint32_t k, double delta, double gamma,
                         double log_eps_s, double log_eps_c) {
  // The rate of neighbours lost to dropout or corruption.
  const double lost = delta + gamma;
  if (lost > 0 && k * std::log(lost) > log_eps_s) return 0;  // isolation
  // Security: t_min = smallest t with 2t - k >= m_c, where m_c is where
  // C's tail falls to eps_s.
  const uint32_t m_c = RareTailStart(k, gamma, log_eps_s);
  const uint64_t t_min = std::max<uint64_t>(1, (uint64_t{m_c} + k + 1) / 2);
  if (t_min > k) return 0;
  // Correctness: with D = k - H ~ Binomial(k, delta + gamma),
  // P[H < t] = P[D >= k - t + 1] <= eps_c. Checking it at t_min alone is
  // enough: a larger t only makes it harder.
  if (!TailAtMost(k, lost, uint64_t{k} + 1 - t_min, log_eps_c)) return 0;
  return static_cast<uint32_t>(t_min);
}

}  // namespace

absl::Status GraphOptions::Validate() const {
  // Written as !(in range) so that NaN is refused too.
  if (!(dropout_rate >= 0 && dropout_rate < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout_rate must be in [0, 1), got ", dropout_rate));
  }
  if (!(adversary_rate >= 0 && adversary_rate < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("adversary_rate must be in [0, 1), got ", adversary_rate));
  }
  if (!(dropout_rate + adversary_rate < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout_rate + adversary_rate must be < 1 (some honest "
                     "clients must survive), got ",
                     dropout_rate, " + ", adversary_rate));
  }
  if (security_bits < 1 || security_bits > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("security_bits must be in [1, 256], got ", security_bits));
  }
  if (correctness_bits < 1 || correctness_bits > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "correctness_bits must be in [1, 256], got ", correctness_bits));
  }
  return absl::OkStatus();
}

absl::StatusOr<GraphParameters> ChooseGraphParameters(
    uint32_t num_clients, const GraphOptions& options) {
  if (num_clients < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_clients must be >= 2, got ", num_clients));
  }
  SHOAL_RETURN_IF_ERROR(options.Validate());
  const double delta = options.dropout_rate;
  const double gamma = options.adversary_rate;
  const double log_n = std::log(static_cast<double>(num_clients));
  const double log_eps_s = -options.security_bits * std::log(2.0) - log_n;
  const double log_eps_c = -options.correctness_bits * std::log(2.0) - log_n;

  // A k can only work if k * gap < 1, gap = delta + 1.5 gamma - 1/2: both
  // eps are below 1/2, so security puts 2t - k above a median of C (at least
  // floor(k gamma)), t > k (1 + gamma) / 2, and correctness keeps t at or
  // below a median of H (at most ceil(k (1 - delta - gamma))),
  // t < k (1 - delta - gamma) + 1. When gap > 0 this ends the search early
  // instead of walking every k up to n.
  const double gap = delta + 1.5 * gamma - 0.5;
  for (uint64_t k = 2; k + 2 <= num_clients; k += 2) {
    if (gap > 0 && k * gap >= 1 + 1e-9) break;
    const uint32_t t = SparseThreshold(static_cast<uint32_t>(k), delta, gamma,
                                       log_eps_s, log_eps_c);
    if (t > 0) return GraphParameters{static_cast<uint32_t>(k), t, false};
  }

  // The complete graph. gamma * n is nudged down by 1e-9 before rounding up
  // so that rates written in decimal (0.07 * 100 = 7.000000000000001) count
  // the clients the caller meant.
  const uint32_t k = num_clients - 1;
  const double corrupt = std::ceil(gamma * num_clients - 1e-9);
  const uint64_t c =
      std::min<uint64_t>(k, static_cast<uint64_t>(std::max(0.0, corrupt)));
  const uint64_t t = std::min<uint64_t>(k, (k + c) / 2 + 1);
  return GraphParameters{k, static_cast<uint32_t>(t), true};
}

absl::StatusOr<std::vector<std::vector<uint32_t>>> MakeNeighbourGraph(
    uint32_t num_clients, uint32_t degree, const Bytes& seed) {
  if (num_clients < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_clients must be >= 2, got ", num_clients));
  }
  if (seed.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("seed must be ", kKeySize, " bytes, got ", seed.size()));
  }
  const uint32_t n = num_clients;
  std::vector<std::vector<uint32_t>> neighbours(n);
  if (degree == n - 1) {
    for (uint32_t i = 1; i <= n; ++i) {
      neighbours[i - 1].reserve(n - 1);
      for (uint32_t j = 1; j <= n; ++j) {
        if (j != i) neighbours[i - 1].push_back(j);
      }
    }
    return neighbours;
  }
  // A Harary graph needs an even degree: k/2 neighbours on each side.
  if (degree < 2 || degree > n - 1 || degree % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("degree must be num_clients - 1 = ", n - 1,
                     " or an even number in [2, ", n - 1, "], got ", degree));
  }

  // A uniformly random cycle order: sort by 62-bit keys from the seed, ties
  // (probability about n^2 / 2^63) broken by index so the order stays a
  // function of the seed alone.
  SHOAL_ASSIGN_OR_RETURN(
      std::vector<uint64_t> keys,
      ExpandMask(seed, "neighbour-graph", n, kMaxMaskModulus));
  std::vector<uint32_t> cycle(n);  // 0-based client indices in cycle order
  std::iota(cycle.begin(), cycle.end(), 0u);
  std::sort(cycle.begin(), cycle.end(), [&keys](uint32_t a, uint32_t b) {
    return keys[a] != keys[b] ? keys[a] < keys[b] : a < b;
  });

  // degree < n, so the k/2 successors and k/2 predecessors are k distinct
  // clients, and joining each client to its successors at distance d makes
  // it their predecessor at distance d: the relation is symmetric.
  const uint64_t half = degree / 2;
  for (uint64_t pos = 0; pos < n; ++pos) {  // 64-bit: pos + n must not wrap
    std::vector<uint32_t>& mine = neighbours[cycle[pos]];
    mine.reserve(degree);
    for (uint64_t d = 1; d <= half; ++d) {
      mine.push_back(cycle[(pos + d) % n] + 1);
      mine.push_back(cycle[(pos + n - d) % n] + 1);
    }
    std::sort(mine.begin(), mine.end());
  }
  return neighbours;
}

}  // namespace shoal::secagg
