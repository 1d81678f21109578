// Model signing: the server signs every global model version with an
// Ed25519 key, and devices verify the signature before they train on or run
// a model. TLS protects the link; the signature protects the model itself,
// so a model that was swapped on a proxy, a mirror, the server's disk or a
// device's cache is refused however it arrived.
//
// What is signed is not the payload but a short, domain-separated message
// naming the version and the payload's digest:
//
//   "shoal-model-v1" (14 ASCII bytes) || 0x00
//   || version (int64, 8 bytes, big-endian two's complement)
//   || SHA-256 of the serialized ParametersProto (32 bytes)
//
// 55 bytes in all. The prefix keeps a model signature from ever being valid
// for another kind of message signed with the same key; the version binds
// the weights to their round, so an old (genuine) model cannot be replayed
// as a newer version. Signatures are plain Ed25519 (RFC 8032, 64 bytes).
//
// Keys are PEM files as `shoal certs` writes them (OpenSSL's
// PEM_write_PrivateKey / PEM_write_PUBKEY):
//   model-signing.key  "-----BEGIN PRIVATE KEY-----"  PKCS#8, Ed25519, unencrypted
//   model-signing.pub  "-----BEGIN PUBLIC KEY-----"   SubjectPublicKeyInfo
// The private key stays on the server; devices get only the public key.
#ifndef SHOAL_COMMON_SIGNING_H_
#define SHOAL_COMMON_SIGNING_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

inline constexpr size_t kModelSignatureBytes = 64;
inline constexpr char kModelSigningDomain[] = "shoal-model-v1";

// ModelSigningMessage returns the bytes that are signed for model `version`
// with payload digest `sha256` (32 raw bytes; InvalidArgument otherwise).
absl::StatusOr<std::string> ModelSigningMessage(int64_t version, absl::string_view sha256);

// ModelSigner holds the server's private model-signing key. Immutable after
// Load, so one instance may sign from any number of threads.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(auto signer, ModelSigner::Load(pki_dir + "/model-signing.key"));
//   SHOAL_ASSIGN_OR_RETURN(std::string sig, signer->Sign(7, Sha256(payload)));
class ModelSigner {
 public:
  // Load reads an unencrypted Ed25519 private key in PKCS#8 PEM. NotFound
  // when the file is missing; InvalidArgument, naming the file and what it
  // holds instead, for anything else (a public key, another key type,
  // an encrypted key, garbage).
  static absl::StatusOr<std::shared_ptr<const ModelSigner>> Load(const std::string& pem_path);
  // FromPem is Load from memory; `source` names the key in errors.
  static absl::StatusOr<std::shared_ptr<const ModelSigner>> FromPem(
      absl::string_view pem, absl::string_view source = "model-signing key");

  ~ModelSigner();
  ModelSigner(const ModelSigner&) = delete;
  ModelSigner& operator=(const ModelSigner&) = delete;

  // Sign returns the 64-byte signature of ModelSigningMessage(version,
  // sha256). InvalidArgument when `sha256` is not 32 bytes.
  absl::StatusOr<std::string> Sign(int64_t version, absl::string_view sha256) const;

  // key_id names the key pair in logs: the first 16 hex digits of the
  // SHA-256 of the raw 32-byte public key (equal to the verifier's key_id).
  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  ModelSigner(std::unique_ptr<Key> key, std::string key_id);
  std::unique_ptr<Key> key_;
  std::string key_id_;
};

// ModelVerifier holds the model-signing public key a device trusts.
// Immutable after Load; thread-safe.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(auto verifier, ModelVerifier::Load("model-signing.pub"));
//   SHOAL_RETURN_IF_ERROR(verifier->Verify(version, Sha256(payload), signature));
class ModelVerifier {
 public:
  // Load reads an Ed25519 public key in SubjectPublicKeyInfo PEM. NotFound
  // when the file is missing; InvalidArgument for anything else (a private
  // key, which a device must not hold, another key type, garbage).
  static absl::StatusOr<std::shared_ptr<const ModelVerifier>> Load(const std::string& pem_path);
  static absl::StatusOr<std::shared_ptr<const ModelVerifier>> FromPem(
      absl::string_view pem, absl::string_view source = "model-signing public key");

  ~ModelVerifier();
  ModelVerifier(const ModelVerifier&) = delete;
  ModelVerifier& operator=(const ModelVerifier&) = delete;

  // Verify returns OK when `signature` is this key's signature of model
  // `version` with payload digest `sha256` (32 raw bytes). Otherwise:
  //   PermissionDenied "model version 7 has no signature"  (empty signature)
  //   PermissionDenied "model version 7's signature does not verify with the
  //     model-signing key <key_id> ..."  (wrong key, altered bytes or version)
  //   InvalidArgument  when `sha256` is not 32 bytes (a caller's bug).
  absl::Status Verify(int64_t version, absl::string_view sha256,
                      absl::string_view signature) const;

  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  ModelVerifier(std::unique_ptr<Key> key, std::string key_id);
  std::unique_ptr<Key> key_;
  std::string key_id_;
};

// ModelSigningKeyPem is a freshly generated key pair in the PEM formats
// above.
struct ModelSigningKeyPem {
  std::string private_pem;  // PKCS#8 "PRIVATE KEY"
  std::string public_pem;   // SubjectPublicKeyInfo "PUBLIC KEY"
};

// GenerateModelSigningKey makes a new Ed25519 key pair (tests and tools;
// deployments use `shoal certs`).
absl::StatusOr<ModelSigningKeyPem> GenerateModelSigningKey();

}  // namespace shoal

#endif  // SHOAL_COMMON_SIGNING_H_
