#include "common/random.h"

#include <algorithm>
#include <cmath>

namespace shoal {

uint64_t UniformIndex(Rng& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // (2^64 - n) mod n == 2^64 mod n
  while (true) {
    const uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

double UniformOpen(Rng& rng) {
  return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
}

double StandardNormal(Rng& rng) {
  while (true) {
    const double u = 2.0 * UniformOpen(rng) - 1.0;
    const double v = 2.0 * UniformOpen(rng) - 1.0;
    const double s = u * u + v * v;
    if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * std::log(s) / s);
  }
}

double LogGamma(Rng& rng, double alpha) {
  const double boost = alpha < 1.0 ? std::log(UniformOpen(rng)) / alpha : 0.0;
  const double d = (alpha < 1.0 ? alpha + 1.0 : alpha) - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    const double x = StandardNormal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = UniformOpen(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x ||
        std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) {
      return std::log(d * v) + boost;
    }
  }
}

std::vector<double> Dirichlet(Rng& rng, double alpha, int k) {
  std::vector<double> p(k);
  for (double& x : p) x = LogGamma(rng, alpha);
  const double top = *std::max_element(p.begin(), p.end());
  double sum = 0.0;
  for (double& x : p) sum += (x = std::exp(x - top));  // largest is 1
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace shoal
