// Shamir secret sharing over GF(2^61 - 1): field arithmetic against Python
// big integers, interpolation against hand-built polynomials, and every
// threshold subset rebuilding the secret.
#include "secagg/shamir.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::secagg {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(FieldTest, MatchesPythonBigIntegers) {
  // /usr/bin/python3: p = 2**61 - 1; a * b % p and pow(a, p - 2, p).
  const uint64_t a = 0x123456789abcdefULL % kShamirPrime;
  const uint64_t b = 0x0fedcba987654321ULL % kShamirPrime;
  EXPECT_EQ(FieldMul(a, b), 0x2b46a8955120470ULL);
  EXPECT_EQ(FieldInverse(a), 0x1220f61c9107b0e3ULL);
  EXPECT_EQ(FieldAdd(kShamirPrime - 1, 2), 1u);
  EXPECT_EQ(FieldSub(1, 2), kShamirPrime - 1);
  EXPECT_EQ(FieldMul(kShamirPrime - 1, kShamirPrime - 1), 1u);  // (-1)^2
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = 1 + rng() % (kShamirPrime - 1);
    EXPECT_EQ(FieldMul(x, FieldInverse(x)), 1u) << x;
  }
}

TEST(ShamirTest, InterpolatesAHandBuiltPolynomial) {
  // f(x) = s + 3x + 5x^2 with s the chunk 00 11 22 33 44 55 66 (little
  // endian 0x66554433221100); f(2), f(5), f(9) computed in Python.
  const std::string secret("\x00\x11\x22\x33\x44\x55\x66", 7);
  const std::vector<ShamirShare> shares = {{2, {28804199028494618ULL}},
                                           {5, {28804199028494732ULL}},
                                           {9, {28804199028495024ULL}}};
  absl::StatusOr<std::string> got = ShamirCombine(shares, 3, 7);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, secret);
}

TEST(ShamirTest, AnyThresholdSubsetRebuildsTheSecret) {
  std::string secret(32, '\0');
  for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<char>(i * 37 + 11);
  absl::StatusOr<std::vector<ShamirShare>> shares = ShamirSplit(secret, 4, 9);
  ASSERT_TRUE(shares.ok()) << shares.status();
  ASSERT_EQ(shares->size(), 9u);
  EXPECT_EQ((*shares)[0].y.size(), ShamirChunks(32));
  EXPECT_EQ(ShamirChunks(32), 5u);
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<ShamirShare> subset = *shares;
    std::shuffle(subset.begin(), subset.end(), rng);
    subset.resize(4 + trial % 3);  // threshold, or more
    absl::StatusOr<std::string> got = ShamirCombine(subset, 4, 32);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, secret);
  }
}

TEST(ShamirTest, FewerThanThresholdSharesRevealNothing) {
  const std::string secret = "a 16-byte secret";
  absl::StatusOr<std::vector<ShamirShare>> shares = ShamirSplit(secret, 3, 5);
  ASSERT_TRUE(shares.ok());
  // Too few is refused...
  absl::StatusOr<std::string> refused = ShamirCombine({(*shares)[0], (*shares)[1]}, 3, 16);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(Message(refused.status()), HasSubstr("need 3 shares"));
  // ...and interpolating them anyway does not give the secret.
  absl::StatusOr<std::string> wrong = ShamirCombine({(*shares)[0], (*shares)[1]}, 2, 16);
  EXPECT_TRUE(!wrong.ok() || *wrong != secret);
  // Two splits of one secret share nothing: the polynomials are random.
  absl::StatusOr<std::vector<ShamirShare>> again = ShamirSplit(secret, 3, 5);
  ASSERT_TRUE(again.ok());
  EXPECT_NE((*shares)[0].y, (*again)[0].y);
}

TEST(ShamirTest, ThresholdOfOneAndOddSizesWork) {
  for (size_t size : {1, 6, 7, 8, 13, 14, 33}) {
    std::string secret(size, 'x');
    secret[0] = '\xff';
    absl::StatusOr<std::vector<ShamirShare>> shares = ShamirSplit(secret, 1, 3);
    ASSERT_TRUE(shares.ok());
    absl::StatusOr<std::string> got = ShamirCombine({(*shares)[2]}, 1, size);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, secret) << size;
  }
}

TEST(ShamirTest, BadArgumentsAndSharesAreRefused) {
  EXPECT_THAT(Message(ShamirSplit("", 1, 1).status()), HasSubstr("empty"));
  EXPECT_THAT(Message(ShamirSplit("s", 0, 3).status()), HasSubstr("threshold"));
  EXPECT_THAT(Message(ShamirSplit("s", 4, 3).status()), HasSubstr("threshold"));
  EXPECT_THAT(Message(ShamirSplit("s", 1, 0).status()), HasSubstr("num_shares"));

  absl::StatusOr<std::vector<ShamirShare>> shares = ShamirSplit("sixteen byte key", 2, 4);
  ASSERT_TRUE(shares.ok());
  const ShamirShare a = (*shares)[0], b = (*shares)[1];
  EXPECT_THAT(Message(ShamirCombine({a, a}, 2, 16).status()), HasSubstr("two shares at x = 1"));
  ShamirShare zero = a;
  zero.x = 0;
  EXPECT_THAT(Message(ShamirCombine({zero, b}, 2, 16).status()), HasSubstr("x = 0"));
  ShamirShare shorter = b;
  shorter.y.pop_back();
  EXPECT_THAT(Message(ShamirCombine({a, shorter}, 2, 16).status()), HasSubstr("holds 3 values"));
  ShamirShare outside = b;
  outside.y[0] = kShamirPrime;
  EXPECT_THAT(Message(ShamirCombine({a, outside}, 2, 16).status()), HasSubstr("outside the field"));
  // A tampered value almost always rebuilds something no 16-byte secret
  // could be; it never rebuilds the secret.
  ShamirShare tampered = b;
  tampered.y[0] = FieldAdd(tampered.y[0], 1);
  absl::StatusOr<std::string> got = ShamirCombine({a, tampered}, 2, 16);
  EXPECT_TRUE(!got.ok() || *got != "sixteen byte key");
}

}  // namespace
}  // namespace shoal::secagg
