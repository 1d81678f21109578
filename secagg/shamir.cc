#include "secagg/shamir.h"

#include <openssl/rand.h>

#include <set>

#include "absl/strings/str_cat.h"

namespace shoal::secagg {
namespace {

constexpr size_t kChunkBytes = 7;  // 56 bits: every chunk is below the prime

// RandomFieldElement draws uniformly from [0, p) by rejection: 61 random
// bits, retried when they equal p itself (or above).
absl::StatusOr<uint64_t> RandomFieldElement() {
  while (true) {
    uint64_t r = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof(r)) != 1) {
      return absl::InternalError("the system's random source failed (RAND_bytes)");
    }
    r &= kShamirPrime;  // 61 low bits
    if (r < kShamirPrime) return r;
  }
}

// Chunk returns the `i`-th 7-byte little-endian chunk of `secret`.
uint64_t Chunk(const std::string& secret, size_t i) {
  uint64_t v = 0;
  for (size_t b = 0; b < kChunkBytes && i * kChunkBytes + b < secret.size(); ++b) {
    v |= uint64_t{static_cast<unsigned char>(secret[i * kChunkBytes + b])} << (8 * b);
  }
  return v;
}

}  // namespace

uint64_t FieldAdd(uint64_t a, uint64_t b) {
  const uint64_t s = a + b;  // < 2^62: no overflow
  return s >= kShamirPrime ? s - kShamirPrime : s;
}

uint64_t FieldSub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kShamirPrime - b; }

uint64_t FieldMul(uint64_t a, uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  // 2^61 = 1 mod p: fold the high bits onto the low ones.
  uint64_t r = static_cast<uint64_t>(product & kShamirPrime) +
               static_cast<uint64_t>(product >> 61);
  r = (r & kShamirPrime) + (r >> 61);
  return r >= kShamirPrime ? r - kShamirPrime : r;
}

uint64_t FieldInverse(uint64_t a) {
  uint64_t result = 1, base = a, e = kShamirPrime - 2;
  while (e > 0) {
    if (e & 1) result = FieldMul(result, base);
    base = FieldMul(base, base);
    e >>= 1;
  }
  return result;
}

size_t ShamirChunks(size_t secret_size) { return (secret_size + kChunkBytes - 1) / kChunkBytes; }

absl::StatusOr<std::vector<ShamirShare>> ShamirSplit(const std::string& secret, int threshold,
                                                     int num_shares) {
  if (secret.empty()) return absl::InvalidArgumentError("the secret is empty");
  if (num_shares < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_shares must be >= 1, got ", num_shares));
  }
  if (threshold < 1 || threshold > num_shares) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threshold must be in [1, num_shares = ", num_shares, "], got ", threshold));
  }
  const size_t chunks = ShamirChunks(secret.size());
  std::vector<ShamirShare> shares(static_cast<size_t>(num_shares));
  for (int i = 0; i < num_shares; ++i) {
    shares[i].x = static_cast<uint32_t>(i + 1);
    shares[i].y.resize(chunks);
  }
  std::vector<uint64_t> coefficients(static_cast<size_t>(threshold));
  for (size_t c = 0; c < chunks; ++c) {
    coefficients[0] = Chunk(secret, c);
    for (int k = 1; k < threshold; ++k) {
      absl::StatusOr<uint64_t> r = RandomFieldElement();
      if (!r.ok()) return r.status();
      coefficients[k] = *r;
    }
    for (ShamirShare& share : shares) {
      // Horner: f(x) = c0 + x (c1 + x (c2 + ...)).
      uint64_t y = 0;
      for (int k = threshold - 1; k >= 0; --k) {
        y = FieldAdd(FieldMul(y, share.x), coefficients[k]);
      }
      share.y[c] = y;
    }
  }
  return shares;
}

absl::StatusOr<std::string> ShamirCombine(const std::vector<ShamirShare>& shares, int threshold,
                                          size_t secret_size) {
  if (threshold < 1) {
    return absl::InvalidArgumentError(absl::StrCat("threshold must be >= 1, got ", threshold));
  }
  if (shares.size() < static_cast<size_t>(threshold)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "need ", threshold, " shares to rebuild the secret, got ", shares.size()));
  }
  const size_t chunks = ShamirChunks(secret_size);
  std::set<uint32_t> seen;
  const std::vector<ShamirShare> used(shares.begin(), shares.begin() + threshold);
  for (const ShamirShare& s : used) {
    if (s.x == 0) return absl::InvalidArgumentError("a share at x = 0 would be the secret itself");
    if (!seen.insert(s.x).second) {
      return absl::InvalidArgumentError(absl::StrCat("two shares at x = ", s.x));
    }
    if (s.y.size() != chunks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a share of a ", secret_size, "-byte secret holds ", chunks, " values, got ",
          s.y.size()));
    }
    for (uint64_t y : s.y) {
      if (y >= kShamirPrime) return absl::InvalidArgumentError("a share value is outside the field");
    }
  }
  // Lagrange weights at 0: w_i = prod_{j != i} x_j / (x_j - x_i).
  std::vector<uint64_t> weights(used.size());
  for (size_t i = 0; i < used.size(); ++i) {
    uint64_t num = 1, den = 1;
    for (size_t j = 0; j < used.size(); ++j) {
      if (j == i) continue;
      num = FieldMul(num, used[j].x);
      den = FieldMul(den, FieldSub(used[j].x, used[i].x));
    }
    weights[i] = FieldMul(num, FieldInverse(den));
  }
  std::string secret(secret_size, '\0');
  for (size_t c = 0; c < chunks; ++c) {
    uint64_t v = 0;
    for (size_t i = 0; i < used.size(); ++i) v = FieldAdd(v, FieldMul(weights[i], used[i].y[c]));
    for (size_t b = 0; b < kChunkBytes && c * kChunkBytes + b < secret_size; ++b) {
      secret[c * kChunkBytes + b] = static_cast<char>((v >> (8 * b)) & 0xff);
    }
    // A correct rebuild leaves nothing above the chunk's bytes.
    const size_t bytes = std::min(kChunkBytes, secret_size - c * kChunkBytes);
    if (bytes < 8 && (v >> (8 * bytes)) != 0) {
      return absl::InvalidArgumentError(
          "the shares do not rebuild a secret of this size (wrong or tampered shares)");
    }
  }
  return secret;
}

}  // namespace shoal::secagg
