// Seed mixing shared by every room: deterministic on every platform.
#ifndef SHOAL_COMMON_RANDOM_H_
#define SHOAL_COMMON_RANDOM_H_

#include <cstdint>

namespace shoal {

// SplitMix64 is the splitmix64 step (Steele et al. 2014): a bijective
// scrambler that turns related seeds (seed, seed + 1, ...) into unrelated
// ones. Combine values as SplitMix64(SplitMix64(a) ^ b).
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace shoal

#endif  // SHOAL_COMMON_RANDOM_H_
