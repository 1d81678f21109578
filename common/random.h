// Seed mixing and samplers shared by every room: deterministic on every
// platform. The std:: distributions are implementation-defined (libstdc++
// and libc++ give different streams), so every draw here is built from raw
// mt19937_64 output, whose sequence the standard fixes.
#ifndef SHOAL_COMMON_RANDOM_H_
#define SHOAL_COMMON_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace shoal {

using Rng = std::mt19937_64;

// SplitMix64 is the splitmix64 step (Steele et al. 2014): a bijective
// scrambler that turns related seeds (seed, seed + 1, ...) into unrelated
// ones. Combine values as SplitMix64(SplitMix64(a) ^ b).
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// MixSeed combines a seed with a value, e.g. a client index or a round.
inline uint64_t MixSeed(uint64_t seed, uint64_t value) {
  return SplitMix64(SplitMix64(seed) ^ value);
}

// UniformIndex returns an unbiased integer in [0, n), n > 0, by rejecting
// the top sliver of 2^64 that does not divide evenly by n.
uint64_t UniformIndex(Rng& rng, uint64_t n);

// UniformOpen returns a double in (0, 1): the midpoints of 2^53 equal cells,
// so log() of it is always finite.
double UniformOpen(Rng& rng);

// StandardNormal: Marsaglia's polar method (one of the pair is discarded to
// keep the sampler stateless).
double StandardNormal(Rng& rng);

// LogGamma returns log X for X ~ Gamma(alpha, 1), alpha > 0, by Marsaglia &
// Tsang (2000). For alpha < 1 it uses their boost X = Y * U^(1/alpha) with
// Y ~ Gamma(alpha + 1); staying in log space keeps tiny alphas (where X
// underflows to 0) usable.
double LogGamma(Rng& rng, double alpha);

// Dirichlet draws proportions ~ Dir(alpha, ..., alpha) over `k` outcomes.
std::vector<double> Dirichlet(Rng& rng, double alpha, int k);

// PartialShuffle moves a uniform random sample of `k` of v's elements
// (k <= v.size()) to its front, in random order (partial Fisher-Yates).
template <typename T>
void PartialShuffle(std::vector<T>& v, size_t k, Rng& rng) {
  for (size_t i = 0; i < k; ++i) {
    std::swap(v[i], v[i + UniformIndex(rng, v.size() - i)]);
  }
}

// Shuffle puts `v` in uniform random order.
template <typename T>
void Shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    std::swap(v[i - 1], v[UniformIndex(rng, i)]);
  }
}

}  // namespace shoal

#endif  // SHOAL_COMMON_RANDOM_H_
