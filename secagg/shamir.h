// Shamir secret sharing over the prime field GF(2^61 - 1), for the key
// shares of secure aggregation: any `threshold` of the shares rebuild a
// secret, and fewer reveal nothing about it.
//
// A secret of any length is cut into 7-byte chunks (each below the field's
// prime) and every chunk is shared with its own random polynomial of degree
// threshold - 1, evaluated at x = 1..n. Coefficients come from OpenSSL's
// RAND_bytes, never from a non-cryptographic generator.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(std::vector<ShamirShare> shares,
//                          ShamirSplit(seed, /*threshold=*/3, /*num_shares=*/5));
//   // ... any 3 of them later:
//   SHOAL_ASSIGN_OR_RETURN(std::string seed_again,
//                          ShamirCombine({shares[0], shares[2], shares[4]}, 3, seed.size()));
#ifndef SHOAL_SECAGG_SHAMIR_H_
#define SHOAL_SECAGG_SHAMIR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::secagg {

// The field's prime, 2^61 - 1.
inline constexpr uint64_t kShamirPrime = (uint64_t{1} << 61) - 1;

// Field arithmetic mod kShamirPrime; arguments must be below it.
uint64_t FieldAdd(uint64_t a, uint64_t b);
uint64_t FieldSub(uint64_t a, uint64_t b);
uint64_t FieldMul(uint64_t a, uint64_t b);
// FieldInverse: a^-1 for a != 0 (Fermat: a^(p-2)).
uint64_t FieldInverse(uint64_t a);

// ShamirShare: one holder's share of a secret: the evaluation point x
// (1..n) and one field element per 7-byte chunk of the secret.
struct ShamirShare {
  uint32_t x = 0;
  std::vector<uint64_t> y;
};

// ShamirSplit shares `secret` (non-empty) among `num_shares` holders so that
// any `threshold` of them can rebuild it: 1 <= threshold <= num_shares <=
// 2^31. InvalidArgument naming the bad argument; Internal when the system's
// random source fails.
absl::StatusOr<std::vector<ShamirShare>> ShamirSplit(const std::string& secret, int threshold,
                                                     int num_shares);

// ShamirCombine rebuilds a `secret_size`-byte secret from at least
// `threshold` shares (extra shares are ignored: the first `threshold` are
// used). InvalidArgument for too few shares, a share at x = 0, two shares at
// the same x, shares whose length does not fit `secret_size`, or a result
// that cannot be a secret of that size. That last check catches most wrong
// (tampered) shares but not all: a caller that must be sure checks the
// secret itself (e.g. against a public key).
absl::StatusOr<std::string> ShamirCombine(const std::vector<ShamirShare>& shares, int threshold,
                                          size_t secret_size);

// ShamirChunks is the number of field elements a share of a
// `secret_size`-byte secret holds.
size_t ShamirChunks(size_t secret_size);

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_SHAMIR_H_
