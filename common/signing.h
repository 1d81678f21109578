// Model signing: the server signs every global model version with an
// Ed25519 key, and devices verify the signature before they train on or run
// a model. TLS protects the link; the signature protects the model itself,
// so a model that was swapped on a proxy, a mirror, the server's disk or a
// device's cache is refused however it arrived.
//
// A model is its weights *and* the code that runs them, so the signature
// covers both: not the payload but a short, domain-separated message naming
// the version, the weights' digest, the model spec and the code's digest
// (SignedModel below):
//
//   "shoal-model-v2" (14 ASCII bytes) || 0x00
//   || version (int64, 8 bytes, big-endian two's complement)
//   || u32 BE 32  || SHA-256 of the serialized ParametersProto (32 bytes)
//   || u32 BE n   || the canonical model spec (n = 1..64 bytes: a built-in
//                    name such as "cnn", or "torchscript"; never a path)
//   || u32 BE m   || SHA-256 of the TorchScript file's bytes (m = 32), or
//                    nothing (m = 0) for a built-in model
//
// Every field after the version is length-prefixed, so no choice of spec can
// make one message's fields read as another's. The prefix keeps a model
// signature from ever being valid for another kind of message signed with
// the same key; the version binds the model to its round, so an old
// (genuine) model cannot be replayed as a newer version. Signatures are
// plain Ed25519 (RFC 8032, 64 bytes).
//
// A serving version (the model the fleet answers predictions with, chosen
// from a run's training versions: docs/lifecycle.md) is signed under its own
// domain, so no training version's signature ever passes as a serving
// version's, or the reverse, and its provenance is covered too:
//
//   "shoal-serving-v1" (16 ASCII bytes) || 0x00
//   || serving version (int64 BE; 1, 2, ... increasing: a rollback is a new
//      serving version with older weights)
//   || the weights, spec and code fields exactly as above
//   || u32 BE k || the run that trained it (k = 1..128 bytes)
//   || that run's training version (int64 BE)
//
// Format v1 ("shoal-model-v1" || 0x00 || version || weights SHA-256, 55
// bytes) covered the weights only: a manifest could point them at other
// code. Verify refuses v1 signatures, saying the model was signed by an
// older server; nothing signs them any more.
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
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

inline constexpr size_t kModelSignatureBytes = 64;
inline constexpr char kModelSigningDomain[] = "shoal-model-v2";
// The format before the model's code was signed; refused by Verify.
inline constexpr char kModelSigningDomainV1[] = "shoal-model-v1";
// kTorchScriptModelSpec is the canonical spec of every TorchScript model:
// which code it runs is said by SignedModel::code_sha256, not by a path.
inline constexpr char kTorchScriptModelSpec[] = "torchscript";
inline constexpr size_t kMaxModelSpecBytes = 64;
inline constexpr char kServingSigningDomain[] = "shoal-serving-v1";
inline constexpr size_t kMaxRunIdBytes = 128;

// ServingOrigin: the training version a serving version was promoted from.
struct ServingOrigin {
  std::string run;               // the run's ID: 1-128 of [A-Za-z0-9._-]
  int64_t training_version = 0;  // that run's model version (>= 0)
};

// SignedModel is what a model signature covers: everything that decides
// what a device computes with the model.
struct SignedModel {
  int64_t version = 0;         // 0 = initial model, r = after round r
  std::string weights_sha256;  // 32 raw bytes, of the serialized ParametersProto
  // The canonical spec: a built-in model's name ("cnn", "2nn", "logreg") or
  // kTorchScriptModelSpec. 1-64 of [a-z0-9_-]; a path is never canonical.
  std::string spec;
  // For kTorchScriptModelSpec: 32 raw bytes, the SHA-256 of the TorchScript
  // file's bytes. Empty for a built-in (its code ships with Shoal).
  std::string code_sha256;
  // Set for a serving version: `version` is then the serving version and
  // the message is the serving one (kServingSigningDomain).
  std::optional<ServingOrigin> serving;
};

// SignedWhat names `model` in messages: "model version 7" or "serving
// version 3".
std::string SignedWhat(const SignedModel& model);

// ValidateRunId accepts a run ID: 1-128 of [A-Za-z0-9._-]; InvalidArgument
// naming what is wrong otherwise.
absl::Status ValidateRunId(absl::string_view run);

// ValidateModelSpec accepts a canonical spec (see SignedModel::spec);
// InvalidArgument, naming what is wrong, otherwise.
absl::Status ValidateModelSpec(absl::string_view spec);

// ModelSigningMessage returns the bytes signed for `model`. InvalidArgument
// when a digest is not 32 bytes, the spec is not canonical, the spec and
// the code digest disagree (TorchScript without a code digest, a built-in
// with one), or a serving version's origin is malformed (run ID, negative
// training version, serving version below 1).
absl::StatusOr<std::string> ModelSigningMessage(const SignedModel& model);

// ModelSigner holds the server's private model-signing key. Immutable after
// Load, so one instance may sign from any number of threads.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(auto signer, ModelSigner::Load(pki_dir + "/model-signing.key"));
//   SHOAL_ASSIGN_OR_RETURN(std::string sig,
//                          signer->Sign({7, Sha256(payload), "cnn", ""}));
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

  // Sign returns the 64-byte signature of ModelSigningMessage(model).
  // InvalidArgument when ModelSigningMessage refuses `model`.
  absl::StatusOr<std::string> Sign(const SignedModel& model) const;

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
//   SHOAL_RETURN_IF_ERROR(verifier->Verify({version, Sha256(payload), "cnn", ""}, signature));
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

  // Verify returns OK when `signature` is this key's signature of `model`
  // (format v2). Otherwise:
  //   PermissionDenied "model version 7 has no signature"  (empty signature)
  //   PermissionDenied "model version 7 was signed by an older Shoal server
  //     ..."  (a v1 signature: it does not cover the model's code)
  //   PermissionDenied "model version 7: the model spec '/x.pt' is not
  //     canonical ...; no server signs such a model ..."  (a spec that is
  //     not canonical, such as a path, or a spec and code digest that
  //     disagree)
  //   PermissionDenied "model version 7's signature does not verify with the
  //     model-signing key <key_id> ..."  (wrong key; altered weights, spec,
  //     code or version)
  //   InvalidArgument  when `model.weights_sha256` is not 32 bytes (a
  //     caller's bug).
  absl::Status Verify(const SignedModel& model, absl::string_view signature) const;

  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  // VerifyMessage checks `signature` over `message` (false: it does not
  // verify; an error only when OpenSSL itself fails).
  absl::StatusOr<bool> VerifyMessage(absl::string_view message, absl::string_view signature) const;
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
