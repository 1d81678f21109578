// Encoding: how a client's update becomes integers modulo the secure
// aggregation modulus, and how the server turns the unmasked sum back into
// numbers. Values are clipped to [-clip, clip], shifted to [0, 2 clip] and
// quantized to 2^bits levels with stochastic rounding (unbiased: the
// expected code is the exact value). The sum of n clients' codes is exact as
// long as it stays below the modulus, i.e. n <= MaxClients().
//
// Bound: each element of a decoded sum of n clients differs from the sum of
// the clipped values by less than n * step, step = 2 clip / (2^bits - 1).
#ifndef SHOAL_SECAGG_ENCODING_H_
#define SHOAL_SECAGG_ENCODING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::secagg {

// EncodingOptions. The defaults carry 16-bit codes of values in [-1, 1] for
// up to 2^24 clients in a 40-bit modulus.
struct EncodingOptions {
  double clip = 1.0;                    // finite, > 0
  uint32_t bits = 16;                   // quantization bits, in [1, 32]
  uint64_t modulus = uint64_t{1} << 40;  // in [2, 2^62]

  // Validate returns InvalidArgument naming the first bad field.
  absl::Status Validate() const;
  // Step is the value of one quantization level: 2 clip / (2^bits - 1).
  double Step() const;
  // MaxClients is the largest cohort whose summed codes cannot wrap around
  // the modulus: floor((modulus - 1) / (2^bits - 1)).
  uint64_t MaxClients() const;
};

// Encode clips, quantizes and stochastically rounds `n` values. The rounding
// draws come from `rounding_seed` (32 bytes; a fresh random one per update,
// e.g. RandomBytes(kKeySize)). InvalidArgument for bad options, a bad seed
// or a non-finite value.
absl::StatusOr<std::vector<uint64_t>> Encode(const float* values, size_t n,
                                             const EncodingOptions& options,
                                             const std::string& rounding_seed);

// DecodeSum turns the (unmasked) sum of `num_clients` clients' codes back
// into the sum of their values. InvalidArgument when num_clients exceeds
// MaxClients() (the sum may have wrapped) or a code is outside the modulus.
absl::StatusOr<std::vector<double>> DecodeSum(const std::vector<uint64_t>& sum,
                                              uint64_t num_clients,
                                              const EncodingOptions& options);

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_ENCODING_H_
