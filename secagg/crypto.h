// Cryptographic primitives of secure aggregation (Bonawitz et al. 2017,
// SecAgg+): X25519 key agreement, HKDF-SHA256, AES-256-GCM authenticated
// encryption and the AES-CTR pseudorandom masks that clients add to their
// updates. Everything runs on OpenSSL 3's EVP interface; nothing here
// depends on LibTorch.
//
// All functions are thread-safe (they share no state; OpenSSL 3 is
// thread-safe) and report failures as absl::Status values, never by throwing
// or aborting.
#ifndef SHOAL_SECAGG_CRYPTO_H_
#define SHOAL_SECAGG_CRYPTO_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "openssl/types.h"

namespace shoal::secagg {

// Bytes holds binary data (keys, ciphertexts), not text.
using Bytes = std::string;

// kKeySize is the size in bytes of X25519 keys, agreed keys, AES-256 keys and
// mask seeds.
inline constexpr size_t kKeySize = 32;
// kNonceSize is the size of the AES-GCM nonce that Seal prepends.
inline constexpr size_t kNonceSize = 12;
// kTagSize is the size of the AES-GCM tag that Seal appends.
inline constexpr size_t kTagSize = 16;
// kMaxMaskModulus is the largest modulus ExpandMask accepts, 2^62.
inline constexpr uint64_t kMaxMaskModulus = uint64_t{1} << 62;

// KeyPair is an X25519 key pair as raw 32-byte keys (RFC 7748 encoding).
struct KeyPair {
  Bytes private_key;
  Bytes public_key;
};

// GenerateKeyPair returns a fresh X25519 key pair from OpenSSL's CSPRNG.
// Internal if OpenSSL fails.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(KeyPair mine, GenerateKeyPair());
absl::StatusOr<KeyPair> GenerateKeyPair();

// PublicKeyOf returns the X25519 public key of `private_key`, so whoever
// rebuilds a private key from shares can check it against the public key
// its owner advertised. InvalidArgument for a key that is not kKeySize bytes.
absl::StatusOr<Bytes> PublicKeyOf(const Bytes& private_key);

// AgreeKey returns the 32-byte key shared by the holders of `private_key` and
// of the private half of `peer_public_key`: X25519, then HKDF-SHA256 of the
// shared secret with an empty salt and `context` as info, so keys agreed for
// different purposes (say "encryption" and "mask") are independent.
// InvalidArgument for a key that is not kKeySize bytes, or when the shared
// secret is all zeros (a low-order peer public key, which a malicious peer
// could send to force a known key).
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(
//       Bytes key, AgreeKey(mine.private_key, their_public, "shoal-enc"));
absl::StatusOr<Bytes> AgreeKey(const Bytes& private_key,
                               const Bytes& peer_public_key,
                               absl::string_view context);

// AgreementKey is a private key loaded once for many agreements: loading
// one costs a scalar multiplication (for its public key), as much as the
// agreement itself, and a client agrees with every neighbour. Copies share
// the key; thread-safe.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(AgreementKey mine, AgreementKey::FromPrivate(priv));
//   SHOAL_ASSIGN_OR_RETURN(Bytes key, mine.Agree(their_public, "shoal-enc"));
class AgreementKey {
 public:
  // FromPrivate: InvalidArgument for a key that is not kKeySize bytes.
  static absl::StatusOr<AgreementKey> FromPrivate(const Bytes& private_key);
  // Agree is AgreeKey with this private key.
  absl::StatusOr<Bytes> Agree(const Bytes& peer_public_key,
                              absl::string_view context) const;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;
};

// Hkdf returns `length` bytes of HKDF-SHA256 (RFC 5869) of `secret` with
// `salt` (empty means the RFC's default, HashLen zero bytes) and `info`.
// InvalidArgument for an empty secret, or a length of 0 or above 255 * 32.
absl::StatusOr<Bytes> Hkdf(const Bytes& secret, const Bytes& salt,
                           absl::string_view info, size_t length);

// Seal encrypts `plaintext` with AES-256-GCM under `key` and a fresh random
// 12-byte nonce, authenticating `associated_data` without encrypting it.
// Returns nonce || ciphertext || 16-byte tag (plaintext size + 28 bytes).
// InvalidArgument for a key that is not kKeySize bytes; Internal if OpenSSL
// fails.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(Bytes sealed, Seal(key, share, "u=3,v=7"));
absl::StatusOr<Bytes> Seal(const Bytes& key, const Bytes& plaintext,
                           const Bytes& associated_data);

// SealWithNonce is Seal with a caller-chosen 12-byte nonce. For tests
// against published vectors only: never reuse a nonce under one key, which
// gives away the plaintexts' XOR and the authentication key.
// InvalidArgument for a bad key or nonce size.
absl::StatusOr<Bytes> SealWithNonce(const Bytes& key, const Bytes& nonce,
                                    const Bytes& plaintext,
                                    const Bytes& associated_data);

// Open reverses Seal: returns the plaintext of `sealed` after checking its
// tag. PermissionDenied ("authentication failed") when the tag, the key or
// `associated_data` do not match what Seal saw; InvalidArgument when `sealed`
// is shorter than nonce + tag or the key is not kKeySize bytes.
absl::StatusOr<Bytes> Open(const Bytes& key, const Bytes& sealed,
                           const Bytes& associated_data);

// RandomBytes returns `n` bytes from OpenSSL's CSPRNG (RAND_bytes).
// Internal if the generator fails.
absl::StatusOr<Bytes> RandomBytes(size_t n);

// ExpandMask returns `n` pseudorandom integers, each exactly uniform in
// [0, modulus), derived from the 32-byte `seed` and the domain-separation
// label `domain`:
//   key = HKDF-SHA256(seed, salt "", info "shoal-secagg-mask:" + domain, 32)
// then the AES-256-CTR keystream under `key` with a zero IV is read as
// little-endian uint64 words, and each word w is kept as w % modulus unless
// w >= the largest multiple of modulus not above 2^64 (rejection sampling).
// The output depends only on the arguments, so every platform and every
// party holding the seed computes the same mask.
// InvalidArgument for a seed that is not kKeySize bytes or a modulus outside
// [2, 2^62].
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(std::vector<uint64_t> mask,
//                          ExpandMask(seed, "round-4/pairwise", dim,
//                                     uint64_t{1} << 32));
absl::StatusOr<std::vector<uint64_t>> ExpandMask(const Bytes& seed,
                                                 absl::string_view domain,
                                                 size_t n, uint64_t modulus);

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_CRYPTO_H_
