#include "secagg/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_util.h"
#include "common/status.h"

namespace shoal::secagg {
namespace {

using openssl::CipherCtxPtr;
using openssl::KdfCtxPtr;
using openssl::PkeyCtxPtr;
using openssl::PkeyPtr;


constexpr char kMaskInfoPrefix[] = "shoal-secagg-mask:";
// Keystream generated per EVP_EncryptUpdate call in ExpandMask.
constexpr size_t kKeystreamBlock = 64 * 1024;
// EVP lengths are ints; larger buffers go through in pieces of this size.
constexpr size_t kMaxChunk = size_t{1} << 30;

// Algorithms are fetched once per process. Given EVP_aes_256_gcm() and the
// like, OpenSSL 3 looks the implementation up again on every init, which
// cost more than the cryptography for share-sized messages. Fetched objects
// may be used from any thread; they live until the process ends.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}
const EVP_CIPHER* Aes256Ctr() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
  return cipher;
}
EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr);
  return kdf;
}

absl::Status CheckKeySize(const Bytes& key, absl::string_view name) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be ", kKeySize, " bytes, got ", key.size()));
  }
  return absl::OkStatus();
}

const unsigned char* U8(const Bytes& b) {
  return reinterpret_cast<const unsigned char*>(b.data());
}
unsigned char* U8(Bytes& b) {
  return reinterpret_cast<unsigned char*>(b.data());
}

// CipherUpdate runs EVP_CipherUpdate over `in` in int-sized pieces, writing
// to `out` (nullptr for associated data). Stream modes like GCM and CTR
// write exactly as many bytes as they read.
bool CipherUpdate(EVP_CIPHER_CTX* ctx, unsigned char* out,
                  const unsigned char* in, size_t size) {
  for (size_t done = 0; done < size;) {
    int piece = static_cast<int>(std::min(size - done, kMaxChunk));
    int written = 0;
    if (EVP_CipherUpdate(ctx, out == nullptr ? nullptr : out + done, &written,
                         in + done, piece) != 1) {
      return false;
    }
    done += piece;
  }
  return true;
}

absl::StatusOr<KeyPair> RawKeyPair(EVP_PKEY* pkey) {
  KeyPair pair{Bytes(kKeySize, '\0'), Bytes(kKeySize, '\0')};
  size_t priv_len = kKeySize;
  size_t pub_len = kKeySize;
  if (EVP_PKEY_get_raw_private_key(pkey, U8(pair.private_key), &priv_len) !=
          1 ||
      EVP_PKEY_get_raw_public_key(pkey, U8(pair.public_key), &pub_len) != 1 ||
      priv_len != kKeySize || pub_len != kKeySize) {
    OPENSSL_cleanse(pair.private_key.data(), pair.private_key.size());
    return openssl::InternalError("reading X25519 raw keys");
  }
  return pair;
}

}  // namespace

absl::StatusOr<KeyPair> GenerateKeyPair() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1) {
    return openssl::InternalError("setting up X25519 key generation");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return openssl::InternalError("generating an X25519 key pair");
  }
  PkeyPtr pkey(raw);
  return RawKeyPair(pkey.get());
}

absl::StatusOr<Bytes> PublicKeyOf(const Bytes& private_key) {
  SHOAL_RETURN_IF_ERROR(CheckKeySize(private_key, "X25519 private key"));
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr,
                                            U8(private_key), kKeySize));
  if (pkey == nullptr) return openssl::InternalError("loading X25519 private key");
  SHOAL_ASSIGN_OR_RETURN(KeyPair pair, RawKeyPair(pkey.get()));
  OPENSSL_cleanse(pair.private_key.data(), pair.private_key.size());
  return pair.public_key;
}

namespace {

// AgreeWith: X25519 between a loaded private key and a raw peer public key,
// then HKDF.
absl::StatusOr<Bytes> AgreeWith(EVP_PKEY* own, const Bytes& peer_public_key,
                                absl::string_view context) {
  SHOAL_RETURN_IF_ERROR(
      CheckKeySize(peer_public_key, "X25519 peer public key"));
  PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr,
                                           U8(peer_public_key), kKeySize));
  if (peer == nullptr) {
    return openssl::Error(absl::StatusCode::kInvalidArgument,
                        "loading X25519 peer public key");
  }
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(own, nullptr));
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1) {
    return openssl::InternalError("setting up X25519 derivation");
  }
  if (EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1) {
    return openssl::Error(absl::StatusCode::kInvalidArgument,
                        "X25519 peer public key refused");
  }
  Bytes shared(kKeySize, '\0');
  size_t shared_len = shared.size();
  // OpenSSL itself fails the derivation when the result is all zeros, which
  // is the one way a well-sized peer key can make it fail.
  if (EVP_PKEY_derive(ctx.get(), U8(shared), &shared_len) != 1) {
    return openssl::Error(
        absl::StatusCode::kInvalidArgument,
        "X25519 derivation failed (low-order peer public key?)");
  }
  unsigned char any = 0;
  for (unsigned char c : shared) any |= c;
  if (shared_len != kKeySize || any == 0) {
    OPENSSL_cleanse(shared.data(), shared.size());
    return absl::InvalidArgumentError(
        "X25519 shared secret is all zeros (low-order peer public key)");
  }
  absl::StatusOr<Bytes> key = Hkdf(shared, /*salt=*/"", context, kKeySize);
  OPENSSL_cleanse(shared.data(), shared.size());
  return key;
}

}  // namespace

absl::StatusOr<AgreementKey> AgreementKey::FromPrivate(const Bytes& private_key) {
  SHOAL_RETURN_IF_ERROR(CheckKeySize(private_key, "X25519 private key"));
  EVP_PKEY* raw = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr,
                                               U8(private_key), kKeySize);
  if (raw == nullptr) return openssl::InternalError("loading X25519 private key");
  AgreementKey key;
  key.pkey_ = std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free);
  return key;
}

absl::StatusOr<Bytes> AgreementKey::Agree(const Bytes& peer_public_key,
                                          absl::string_view context) const {
  if (pkey_ == nullptr) {
    return absl::FailedPreconditionError("agreement key was never loaded");
  }
  return AgreeWith(pkey_.get(), peer_public_key, context);
}

absl::StatusOr<Bytes> AgreeKey(const Bytes& private_key,
                               const Bytes& peer_public_key,
                               absl::string_view context) {
  SHOAL_ASSIGN_OR_RETURN(AgreementKey own, AgreementKey::FromPrivate(private_key));
  return own.Agree(peer_public_key, context);
}

absl::StatusOr<Bytes> Hkdf(const Bytes& secret, const Bytes& salt,
                           absl::string_view info, size_t length) {
  if (secret.empty()) {
    return absl::InvalidArgumentError("HKDF secret must not be empty");
  }
  if (length == 0 || length > 255 * 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("HKDF-SHA256 length must be in [1, 8160], got ", length));
  }
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return openssl::InternalError("fetching HKDF");
  KdfCtxPtr ctx(EVP_KDF_CTX_new(kdf));
  if (ctx == nullptr) return openssl::InternalError("creating HKDF context");

  OSSL_PARAM params[5];
  OSSL_PARAM* p = params;
  char digest[] = "SHA256";
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  *p++ = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()), secret.size());
  // An absent salt is RFC 5869's default (HashLen zeros), the same as empty.
  if (!salt.empty()) {
    *p++ = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size());
  }
  if (!info.empty()) {
    *p++ = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
  }
  *p = OSSL_PARAM_construct_end();

  Bytes out(length, '\0');
  if (EVP_KDF_derive(ctx.get(), U8(out), out.size(), params) != 1) {
    return openssl::InternalError("HKDF-SHA256 derivation");
  }
  return out;
}

absl::StatusOr<Bytes> SealWithNonce(const Bytes& key, const Bytes& nonce,
                                    const Bytes& plaintext,
                                    const Bytes& associated_data) {
  SHOAL_RETURN_IF_ERROR(CheckKeySize(key, "AES-256-GCM key"));
  if (nonce.size() != kNonceSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AES-GCM nonce must be ", kNonceSize, " bytes, got ", nonce.size()));
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  // The default GCM IV length is 12 bytes, the size kNonceSize fixes.
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(),
                                           nullptr, U8(key), U8(nonce)) != 1) {
    return openssl::InternalError("setting up AES-256-GCM encryption");
  }
  Bytes sealed(kNonceSize + plaintext.size() + kTagSize, '\0');
  std::copy(nonce.begin(), nonce.end(), sealed.begin());
  unsigned char* body = U8(sealed) + kNonceSize;
  int final_len = 0;
  if (!CipherUpdate(ctx.get(), nullptr, U8(associated_data),
                    associated_data.size()) ||
      !CipherUpdate(ctx.get(), body, U8(plaintext), plaintext.size()) ||
      EVP_EncryptFinal_ex(ctx.get(), body + plaintext.size(), &final_len) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          body + plaintext.size()) != 1) {
    return openssl::InternalError("AES-256-GCM encryption");
  }
  return sealed;
}

absl::StatusOr<Bytes> Seal(const Bytes& key, const Bytes& plaintext,
                           const Bytes& associated_data) {
  // Check the key before spending randomness, so the error is the key's.
  SHOAL_RETURN_IF_ERROR(CheckKeySize(key, "AES-256-GCM key"));
  SHOAL_ASSIGN_OR_RETURN(Bytes nonce, RandomBytes(kNonceSize));
  return SealWithNonce(key, nonce, plaintext, associated_data);
}

absl::StatusOr<Bytes> Open(const Bytes& key, const Bytes& sealed,
                           const Bytes& associated_data) {
  SHOAL_RETURN_IF_ERROR(CheckKeySize(key, "AES-256-GCM key"));
  if (sealed.size() < kNonceSize + kTagSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sealed message of ", sealed.size(),
        " bytes is shorter than nonce + tag (", kNonceSize + kTagSize, ")"));
  }
  const size_t text_size = sealed.size() - kNonceSize - kTagSize;
  const unsigned char* nonce = U8(sealed);
  const unsigned char* ciphertext = nonce + kNonceSize;
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer; copy the tag.
  unsigned char tag[kTagSize];
  std::copy(ciphertext + text_size, ciphertext + text_size + kTagSize, tag);

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr || EVP_DecryptInit_ex(ctx.get(), Aes256Gcm(),
                                           nullptr, U8(key), nonce) != 1) {
    return openssl::InternalError("setting up AES-256-GCM decryption");
  }
  Bytes plaintext(text_size, '\0');
  if (!CipherUpdate(ctx.get(), nullptr, U8(associated_data),
                    associated_data.size()) ||
      !CipherUpdate(ctx.get(), U8(plaintext), ciphertext, text_size) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) !=
          1) {
    return openssl::InternalError("AES-256-GCM decryption");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), U8(plaintext) + text_size, &final_len) !=
      1) {
    // Never hand out unauthenticated plaintext.
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    openssl::DrainErrors();
    return absl::PermissionDeniedError(
        "AES-256-GCM authentication failed: wrong key, tampered message or "
        "mismatched associated data");
  }
  return plaintext;
}

absl::StatusOr<Bytes> RandomBytes(size_t n) {
  Bytes out(n, '\0');
  for (size_t done = 0; done < n;) {
    int piece = static_cast<int>(std::min(n - done, kMaxChunk));
    if (RAND_bytes(U8(out) + done, piece) != 1) {
      return openssl::InternalError("RAND_bytes failed");
    }
    done += piece;
  }
  return out;
}

absl::StatusOr<std::vector<uint64_t>> ExpandMask(const Bytes& seed,
                                                 absl::string_view domain,
                                                 size_t n, uint64_t modulus) {
  SHOAL_RETURN_IF_ERROR(CheckKeySize(seed, "mask seed"));
  if (modulus < 2 || modulus > kMaxMaskModulus) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask modulus must be in [2, 2^62], got ", modulus));
  }
  SHOAL_ASSIGN_OR_RETURN(
      Bytes key,
      Hkdf(seed, /*salt=*/"", absl::StrCat(kMaskInfoPrefix, domain), kKeySize));
  const Bytes zero_iv(16, '\0');
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  bool ready =
      ctx != nullptr && EVP_EncryptInit_ex(ctx.get(), Aes256Ctr(),
                                           nullptr, U8(key), U8(zero_iv)) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ready) return openssl::InternalError("setting up AES-256-CTR");

  // 2^64 mod modulus: words at or above 2^64 minus it would make the low
  // residues likelier. Zero when modulus is a power of two (nothing to drop).
  const uint64_t excess = (UINT64_MAX % modulus + 1) % modulus;
  const uint64_t limit = excess == 0 ? UINT64_MAX : 0 - excess;
  const bool reject_any = excess != 0;
  // For a power of two, w % modulus is a mask: no 64-bit division per value,
  // which was most of the time of a mask with the default 2^48 modulus.
  const bool power_of_two = (modulus & (modulus - 1)) == 0;

  std::vector<uint64_t> mask(n);
  size_t filled = 0;
  const std::vector<unsigned char> zeros(kKeystreamBlock, 0);
  std::vector<unsigned char> stream(kKeystreamBlock);
  while (filled < n) {
    // Only what is still needed (rounded up to whole words), so small masks
    // stay cheap; rejections are rare, so one more pass at most is typical.
    size_t want = std::min(kKeystreamBlock, (n - filled) * 8);
    int written = 0;
    if (EVP_EncryptUpdate(ctx.get(), stream.data(), &written, zeros.data(),
                          static_cast<int>(want)) != 1 ||
        static_cast<size_t>(written) != want) {
      return openssl::InternalError("AES-256-CTR keystream");
    }
    for (size_t i = 0; i + 8 <= want && filled < n; i += 8) {
      const unsigned char* b = stream.data() + i;
      // Little-endian by construction, whatever the host's byte order.
      uint64_t w = uint64_t{b[0]} | uint64_t{b[1]} << 8 | uint64_t{b[2]} << 16 |
                   uint64_t{b[3]} << 24 | uint64_t{b[4]} << 32 |
                   uint64_t{b[5]} << 40 | uint64_t{b[6]} << 48 |
                   uint64_t{b[7]} << 56;
      if (power_of_two) {
        mask[filled++] = w & (modulus - 1);
        continue;
      }
      if (reject_any && w >= limit) continue;
      mask[filled++] = w % modulus;
    }
  }
  OPENSSL_cleanse(stream.data(), stream.size());
  return mask;
}

}  // namespace shoal::secagg
