// Tests of the secure-aggregation crypto primitives. Known answers come from
// RFC 5869 (HKDF), RFC 7748 (X25519), the GCM specification's test cases,
// and, for ExpandMask, Python's `cryptography` package running the documented
// construction independently (HKDF-SHA256, AES-256-CTR, rejection sampling).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "secagg/crypto.h"

namespace shoal::secagg {
namespace {

Bytes FromHex(const std::string& hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    return c - 'a' + 10;
  };
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

Bytes SequentialBytes(size_t n, int first = 0) {
  Bytes out;
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(first + i));
  return out;
}

// ------------------------------------------------------------ key agreement

TEST(AgreeKeyTest, TwoPartiesAgreeAndAThirdDoesNot) {
  absl::StatusOr<KeyPair> alice = GenerateKeyPair();
  absl::StatusOr<KeyPair> bob = GenerateKeyPair();
  absl::StatusOr<KeyPair> eve = GenerateKeyPair();
  ASSERT_TRUE(alice.ok() && bob.ok() && eve.ok());
  EXPECT_EQ(alice->private_key.size(), kKeySize);
  EXPECT_EQ(alice->public_key.size(), kKeySize);
  EXPECT_NE(alice->public_key, bob->public_key);

  absl::StatusOr<Bytes> ab = AgreeKey(alice->private_key, bob->public_key, "c");
  absl::StatusOr<Bytes> ba = AgreeKey(bob->private_key, alice->public_key, "c");
  absl::StatusOr<Bytes> ae = AgreeKey(alice->private_key, eve->public_key, "c");
  ASSERT_TRUE(ab.ok()) << ab.status();
  ASSERT_TRUE(ba.ok()) << ba.status();
  ASSERT_TRUE(ae.ok()) << ae.status();
  EXPECT_EQ(ab->size(), kKeySize);
  EXPECT_EQ(*ab, *ba);
  EXPECT_NE(*ab, *ae);
}

TEST(AgreeKeyTest, DifferentContextsGiveIndependentKeys) {
  absl::StatusOr<KeyPair> alice = GenerateKeyPair();
  absl::StatusOr<KeyPair> bob = GenerateKeyPair();
  ASSERT_TRUE(alice.ok() && bob.ok());
  absl::StatusOr<Bytes> enc =
      AgreeKey(alice->private_key, bob->public_key, "encryption");
  absl::StatusOr<Bytes> mask =
      AgreeKey(alice->private_key, bob->public_key, "mask");
  ASSERT_TRUE(enc.ok() && mask.ok());
  EXPECT_NE(*enc, *mask);
}

// RFC 7748 section 6.1 gives the X25519 shared secret; the expected key is
// HKDF-SHA256(secret, salt "", info "shoal-test") from Python.
TEST(AgreeKeyTest, MatchesRfc7748SecretThroughHkdf) {
  const Bytes alice_private = FromHex(
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const Bytes bob_public = FromHex(
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  absl::StatusOr<Bytes> key = AgreeKey(alice_private, bob_public, "shoal-test");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(HexEncode(*key),
            "b4873908c37f5f2e3ade24f114c2279ed7264ab1f4df3b0805410b58115d8749");
}

TEST(PublicKeyOfTest, MatchesRfc7748AndGeneratedPairs) {
  // RFC 7748 section 6.1: Alice's private and public keys.
  absl::StatusOr<Bytes> alice_public = PublicKeyOf(FromHex(
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  ASSERT_TRUE(alice_public.ok()) << alice_public.status();
  EXPECT_EQ(HexEncode(*alice_public),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  absl::StatusOr<KeyPair> pair = GenerateKeyPair();
  ASSERT_TRUE(pair.ok());
  absl::StatusOr<Bytes> again = PublicKeyOf(pair->private_key);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, pair->public_key);
  EXPECT_EQ(PublicKeyOf("short").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AgreeKeyTest, RefusesKeysOfTheWrongSize) {
  absl::StatusOr<KeyPair> alice = GenerateKeyPair();
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(AgreeKey(alice->private_key, Bytes(31, 'x'), "c").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AgreeKey(Bytes(33, 'x'), alice->public_key, "c").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AgreeKey("", alice->public_key, "c").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AgreeKeyTest, RefusesLowOrderPeerKeys) {
  absl::StatusOr<KeyPair> alice = GenerateKeyPair();
  ASSERT_TRUE(alice.ok());
  // The all-zero point, and the point of order 1 (u = 1): both force an
  // all-zero shared secret.
  Bytes one(kKeySize, '\0');
  one[0] = 1;
  for (const Bytes& bad : {Bytes(kKeySize, '\0'), one}) {
    absl::StatusOr<Bytes> key = AgreeKey(alice->private_key, bad, "c");
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument)
        << key.status();
  }
}

// --------------------------------------------------------------------- HKDF

TEST(HkdfTest, MatchesRfc5869TestCase1) {
  const Bytes ikm(22, '\x0b');
  const Bytes salt = SequentialBytes(13, 0x00);  // 0x00..0x0c
  const Bytes info = SequentialBytes(10, 0xf0);  // 0xf0..0xf9
  absl::StatusOr<Bytes> okm = Hkdf(ikm, salt, info, 42);
  ASSERT_TRUE(okm.ok()) << okm.status();
  EXPECT_EQ(HexEncode(*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
            "34007208d5b887185865");
}

// RFC 5869 test case 3: empty salt and info.
TEST(HkdfTest, MatchesRfc5869TestCase3WithEmptySaltAndInfo) {
  absl::StatusOr<Bytes> okm = Hkdf(Bytes(22, '\x0b'), "", "", 42);
  ASSERT_TRUE(okm.ok()) << okm.status();
  EXPECT_EQ(HexEncode(*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
            "9d201395faa4b61a96c8");
}

TEST(HkdfTest, RefusesBadLengthsAndEmptySecret) {
  EXPECT_EQ(Hkdf("s", "", "", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Hkdf("s", "", "", 255 * 32 + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Hkdf("", "", "", 32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Hkdf("s", "", "", 255 * 32).ok());
}

// -------------------------------------------------------------- AES-256-GCM

class SealTest : public ::testing::Test {
 protected:
  const Bytes key_ = SequentialBytes(kKeySize, 0x40);
  const Bytes plaintext_ = "a Shamir share of a mask seed";
  const Bytes aad_ = "from=3,to=7,round=12";
};

TEST_F(SealTest, RoundTrips) {
  absl::StatusOr<Bytes> sealed = Seal(key_, plaintext_, aad_);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), kNonceSize + plaintext_.size() + kTagSize);
  EXPECT_EQ(sealed->find(plaintext_), std::string::npos);
  absl::StatusOr<Bytes> opened = Open(key_, *sealed, aad_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, plaintext_);
}

TEST_F(SealTest, RoundTripsEmptyPlaintext) {
  absl::StatusOr<Bytes> sealed = Seal(key_, "", aad_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), kNonceSize + kTagSize);
  absl::StatusOr<Bytes> opened = Open(key_, *sealed, aad_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "");
}

TEST_F(SealTest, TamperingAnyByteFailsAuthentication) {
  absl::StatusOr<Bytes> sealed = Seal(key_, plaintext_, aad_);
  ASSERT_TRUE(sealed.ok());
  // Every byte: nonce, ciphertext and tag.
  for (size_t i = 0; i < sealed->size(); ++i) {
    Bytes tampered = *sealed;
    tampered[i] ^= 0x01;
    absl::StatusOr<Bytes> opened = Open(key_, tampered, aad_);
    ASSERT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied)
        << "byte " << i;
    EXPECT_NE(opened.status().message().find("authentication failed"),
              absl::string_view::npos);
  }
}

TEST_F(SealTest, WrongAssociatedDataOrKeyFailsAuthentication) {
  absl::StatusOr<Bytes> sealed = Seal(key_, plaintext_, aad_);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(Open(key_, *sealed, "from=3,to=8,round=12").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Open(key_, *sealed, "").status().code(),
            absl::StatusCode::kPermissionDenied);
  Bytes other_key = key_;
  other_key[31] ^= 0x80;
  EXPECT_EQ(Open(other_key, *sealed, aad_).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SealTest, TwoSealsOfOnePlaintextDiffer) {
  absl::StatusOr<Bytes> first = Seal(key_, plaintext_, aad_);
  absl::StatusOr<Bytes> second = Seal(key_, plaintext_, aad_);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->substr(0, kNonceSize), second->substr(0, kNonceSize));
  EXPECT_NE(*first, *second);
}

TEST_F(SealTest, RefusesShortInputAndBadKeySize) {
  EXPECT_EQ(
      Open(key_, Bytes(kNonceSize + kTagSize - 1, 'x'), aad_).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Open(key_, "", aad_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Open(Bytes(16, 'k'), Bytes(64, 'x'), aad_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Seal(Bytes(16, 'k'), plaintext_, aad_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SealWithNonce(key_, Bytes(16, 'n'), plaintext_, aad_).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// GCM specification (McGrew & Viega), test cases 13 and 14: AES-256, zero key,
// zero 96-bit IV, no associated data.
TEST(SealWithNonceTest, MatchesGcmSpecTestCases13And14) {
  const Bytes key(kKeySize, '\0');
  const Bytes nonce(kNonceSize, '\0');
  absl::StatusOr<Bytes> empty = SealWithNonce(key, nonce, "", "");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(HexEncode(empty->substr(kNonceSize)),
            "530f8afbc74536b9a963b4f1c4cb738b");

  absl::StatusOr<Bytes> block = SealWithNonce(key, nonce, Bytes(16, '\0'), "");
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ(HexEncode(block->substr(0, kNonceSize)), std::string(24, '0'));
  EXPECT_EQ(HexEncode(block->substr(kNonceSize, 16)),
            "cea7403d4d606b6e074ec5d3baf39d18");
  EXPECT_EQ(HexEncode(block->substr(kNonceSize + 16)),
            "d0d1c8a799996bf0265b98b5d48ab919");
  absl::StatusOr<Bytes> opened = Open(key, *block, "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, Bytes(16, '\0'));
}

TEST(RandomBytesTest, ReturnsRequestedSizeAndFreshBytes) {
  absl::StatusOr<Bytes> a = RandomBytes(32);
  absl::StatusOr<Bytes> b = RandomBytes(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
  absl::StatusOr<Bytes> none = RandomBytes(0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// --------------------------------------------------------------- ExpandMask

const Bytes& GoldenSeed() {
  static const Bytes* seed = new Bytes(SequentialBytes(kKeySize));
  return *seed;
}

// Expected values from Python's `cryptography` running the documented
// construction on seed 00..1f and domain "golden".
TEST(ExpandMaskTest, MatchesIndependentReference) {
  absl::StatusOr<std::vector<uint64_t>> mask =
      ExpandMask(GoldenSeed(), "golden", 8, 1000);
  ASSERT_TRUE(mask.ok()) << mask.status();
  EXPECT_EQ(*mask,
            (std::vector<uint64_t>{335, 814, 412, 72, 176, 491, 441, 373}));
}

// With modulus floor(2^64 / 6) + 1 about a sixth of all words are rejected;
// two of the first ten are, so this checks that rejection drops words and
// keeps the stream's order.
TEST(ExpandMaskTest, RejectsWordsAboveTheLastFullMultiple) {
  const uint64_t modulus = UINT64_MAX / 6 + 1;
  ASSERT_EQ(modulus, 3074457345618258603u);
  absl::StatusOr<std::vector<uint64_t>> mask =
      ExpandMask(GoldenSeed(), "golden", 8, modulus);
  ASSERT_TRUE(mask.ok()) << mask.status();
  EXPECT_EQ(*mask,
            (std::vector<uint64_t>{759608286598470129u, 1371342850848342608u,
                                   1047039531033810367u, 403534158823004491u,
                                   2963826113863974441u, 756109923526103770u,
                                   883500831137085057u, 285759588163360450u}));
}

TEST(ExpandMaskTest, AcceptsModulusTwoToTheSixtyTwo) {
  absl::StatusOr<std::vector<uint64_t>> mask =
      ExpandMask(GoldenSeed(), "golden", 8, kMaxMaskModulus);
  ASSERT_TRUE(mask.ok()) << mask.status();
  EXPECT_EQ(*mask, (std::vector<uint64_t>{
                       2296836959407599431u, 2908571523657471910u,
                       2614783150902136700u, 1718981209273401360u,
                       1047039531033810368u, 403534158823004491u,
                       2963826113863974441u, 3830567269144362373u}));
}

TEST(ExpandMaskTest, ModulusTwoGivesBothBitsAboutEqually) {
  absl::StatusOr<std::vector<uint64_t>> mask =
      ExpandMask(GoldenSeed(), "bits", 100000, 2);
  ASSERT_TRUE(mask.ok());
  uint64_t ones = 0;
  for (uint64_t v : *mask) {
    ASSERT_LT(v, 2u);
    ones += v;
  }
  // Standard deviation is ~158; 1,000 is over six of them.
  EXPECT_NEAR(static_cast<double>(ones), 50000.0, 1000.0);
}

TEST(ExpandMaskTest, IsDeterministicAndSeparatedBySeedAndDomain) {
  const uint64_t modulus = uint64_t{1} << 32;
  absl::StatusOr<std::vector<uint64_t>> a =
      ExpandMask(GoldenSeed(), "round-1/pair-3-7", 10000, modulus);
  absl::StatusOr<std::vector<uint64_t>> again =
      ExpandMask(GoldenSeed(), "round-1/pair-3-7", 10000, modulus);
  absl::StatusOr<std::vector<uint64_t>> other_domain =
      ExpandMask(GoldenSeed(), "round-1/pair-3-8", 10000, modulus);
  Bytes other_seed = GoldenSeed();
  other_seed[0] ^= 1;
  absl::StatusOr<std::vector<uint64_t>> from_other_seed =
      ExpandMask(other_seed, "round-1/pair-3-7", 10000, modulus);
  ASSERT_TRUE(a.ok() && again.ok() && other_domain.ok() &&
              from_other_seed.ok());
  EXPECT_EQ(*a, *again);
  EXPECT_NE(*a, *other_domain);
  EXPECT_NE(*a, *from_other_seed);
  // A shorter mask is a prefix of a longer one: the keystream is read in
  // order whatever the block boundaries.
  absl::StatusOr<std::vector<uint64_t>> prefix =
      ExpandMask(GoldenSeed(), "round-1/pair-3-7", 10, modulus);
  ASSERT_TRUE(prefix.ok());
  EXPECT_EQ(*prefix, std::vector<uint64_t>(a->begin(), a->begin() + 10));
}

TEST(ExpandMaskTest, MillionValuesAreInRangeAndRoughlyUniform) {
  constexpr size_t kN = 1000000;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<uint64_t>> mask =
      ExpandMask(GoldenSeed(), "uniformity", kN, 1000);
  const double ms = std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - start)
                        .count();
  ASSERT_TRUE(mask.ok()) << mask.status();
  std::cout << "ExpandMask of " << kN << " values took " << ms << " ms\n";
  ASSERT_EQ(mask->size(), kN);

  double sum = 0;
  std::vector<double> buckets(10, 0.0);
  for (uint64_t v : *mask) {
    ASSERT_LT(v, 1000u);
    sum += static_cast<double>(v);
    buckets[v / 100] += 1;
  }
  EXPECT_NEAR(sum / kN, 499.5, 4.995);
  // Chi-square over ten equal buckets, 9 degrees of freedom: 40 has
  // probability ~1e-5 under uniformity (the seed is fixed, so no flakes).
  double chi_square = 0;
  for (double count : buckets) {
    const double expected = kN / 10.0;
    chi_square += (count - expected) * (count - expected) / expected;
  }
  EXPECT_LT(chi_square, 40.0);
}

TEST(ExpandMaskTest, RefusesBadModulusAndSeedSize) {
  for (uint64_t modulus :
       {uint64_t{0}, uint64_t{1}, kMaxMaskModulus + 1, UINT64_MAX}) {
    EXPECT_EQ(ExpandMask(GoldenSeed(), "d", 4, modulus).status().code(),
              absl::StatusCode::kInvalidArgument)
        << modulus;
  }
  EXPECT_EQ(ExpandMask(Bytes(16, 's'), "d", 4, 1000).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ExpandMaskTest, EmptyMaskIsEmpty) {
  absl::StatusOr<std::vector<uint64_t>> mask =
      ExpandMask(GoldenSeed(), "d", 0, 1000);
  ASSERT_TRUE(mask.ok());
  EXPECT_TRUE(mask->empty());
}

}  // namespace
}  // namespace shoal::secagg
