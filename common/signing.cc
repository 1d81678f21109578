#include "common/signing.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/openssl_util.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal {
namespace {

using openssl::BioPtr;
using openssl::MdCtxPtr;
using openssl::MemoryBio;
using openssl::PkeyPtr;

constexpr size_t kSha256Bytes = 32;
constexpr size_t kRawPublicKeyBytes = 32;
// Key files are a few hundred bytes; anything much larger is not a key.
constexpr uint64_t kMaxKeyFileBytes = 64 << 10;

// NoPassphrase stops OpenSSL from prompting on the terminal for an
// encrypted key: a server started by a service manager has no one to ask.
int NoPassphrase(char*, int, int, void*) { return 0; }

// PemLabelHint says what a PEM text that failed to load holds instead, so
// the error tells the operator which file they passed by mistake.
std::string PemLabelHint(absl::string_view pem) {
  if (absl::StrContains(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    return "an encrypted private key (Shoal reads unencrypted PKCS#8 keys; protect the "
           "file with its permissions instead)";
  }
  if (absl::StrContains(pem, "-----BEGIN PUBLIC KEY-----")) return "a public key";
  if (absl::StrContains(pem, "PRIVATE KEY-----")) return "a private key";
  if (absl::StrContains(pem, "-----BEGIN CERTIFICATE-----")) return "a certificate";
  if (absl::StrContains(pem, "-----BEGIN ")) return "a PEM block of another kind";
  return "no PEM data";
}

absl::Status CheckEd25519(EVP_PKEY* pkey, absl::string_view source) {
  if (EVP_PKEY_is_a(pkey, "ED25519")) return absl::OkStatus();
  const char* type = EVP_PKEY_get0_type_name(pkey);
  return absl::InvalidArgumentError(absl::StrCat(
      source, " holds a key of type ", type != nullptr ? type : "unknown",
      "; model signing needs an Ed25519 key (as `shoal certs` writes)"));
}

absl::StatusOr<std::string> KeyId(EVP_PKEY* pkey) {
  unsigned char raw[kRawPublicKeyBytes];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != sizeof(raw)) {
    return openssl::InternalError("reading the Ed25519 public key");
  }
  return HexEncode(Sha256(absl::string_view(reinterpret_cast<const char*>(raw), len)))
      .substr(0, 16);
}

absl::StatusOr<std::string> ReadKeyFile(const std::string& path, absl::string_view what) {
  absl::StatusOr<std::string> pem = ReadFile(path, kMaxKeyFileBytes);
  if (absl::IsNotFound(pem.status())) {
    return absl::NotFoundError(absl::StrCat(what, " '", path, "' does not exist"));
  }
  if (!pem.ok()) return Annotate(pem.status(), absl::StrCat(what, " '", path, "'"));
  return pem;
}

// ModelSigningMessageV1 is format v1's message (the weights only). It is
// never signed any more; Verify recognizes it to say why it refuses.
std::string ModelSigningMessageV1(int64_t version, absl::string_view sha256) {
  std::string message(kModelSigningDomainV1, sizeof(kModelSigningDomainV1));
  const auto v = static_cast<uint64_t>(version);
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<char>((v >> shift) & 0xff));
  }
  message.append(sha256.data(), sha256.size());
  return message;
}

}  // namespace

absl::Status ValidateRunId(absl::string_view run) {
  if (run.empty() || run.size() > kMaxRunIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a run ID has 1-", kMaxRunIdBytes, " bytes, got ", run.size()));
  }
  for (const char c : run) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "the run ID '", run.substr(0, 32), run.size() > 32 ? "..." : "",
          "' has a character outside [A-Za-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateModelSpec(absl::string_view spec) {
  if (spec.empty()) return absl::InvalidArgumentError("the model spec is empty");
  if (spec.size() > kMaxModelSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model spec has ", spec.size(), " bytes; at most ", kMaxModelSpecBytes));
  }
  for (const char c : spec) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      // The spec may be an attacker's text: quote a bounded prefix only.
      return absl::InvalidArgumentError(
          absl::StrCat("the model spec '", spec.substr(0, 32), spec.size() > 32 ? "..." : "",
                       "' is not canonical (a built-in name or '", kTorchScriptModelSpec,
                       "': 1-64 of [a-z0-9_-], never a path)"));
    }
  }
  return absl::OkStatus();
}

std::string SignedWhat(const SignedModel& model) {
  return absl::StrCat(model.serving ? "serving version " : "model version ", model.version);
}

absl::StatusOr<std::string> ModelSigningMessage(const SignedModel& model) {
  const std::string what = SignedWhat(model);
  if (model.weights_sha256.size() != kSha256Bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": a SHA-256 digest is 32 bytes, got ",
                                                   model.weights_sha256.size()));
  }
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateModelSpec(model.spec), what));
  const bool torchscript = model.spec == kTorchScriptModelSpec;
  if (torchscript && model.code_sha256.size() != kSha256Bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": a TorchScript model needs the 32-byte SHA-256 of its code, got ",
                     model.code_sha256.size(), " bytes"));
  }
  if (!torchscript && !model.code_sha256.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": built-in model '", model.spec,
                     "' has no code of its own, but a code SHA-256 was given"));
  }
  if (model.serving) {
    SHOAL_RETURN_IF_ERROR(Annotate(ValidateRunId(model.serving->run), what));
    if (model.version < 1 || model.serving->training_version < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": serving versions start at 1 and training versions at 0, got training version ",
          model.serving->training_version));
    }
  }
  std::string message = model.serving
                            ? std::string(kServingSigningDomain, sizeof(kServingSigningDomain))
                            : std::string(kModelSigningDomain, sizeof(kModelSigningDomain));
  const auto append_u64 = [&message](uint64_t v, int bytes) {
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
      message.push_back(static_cast<char>((v >> shift) & 0xff));
    }
  };
  const auto append_field = [&](absl::string_view field) {
    append_u64(field.size(), 4);
    message.append(field.data(), field.size());
  };
  append_u64(static_cast<uint64_t>(model.version), 8);
  append_field(model.weights_sha256);
  append_field(model.spec);
  append_field(model.code_sha256);
  if (model.serving) {
    append_field(model.serving->run);
    append_u64(static_cast<uint64_t>(model.serving->training_version), 8);
  }
  return message;
}

// ---- ModelSigner ----

struct ModelSigner::Key {
  PkeyPtr pkey;
};

ModelSigner::ModelSigner(std::unique_ptr<Key> key, std::string key_id)
    : key_(std::move(key)), key_id_(std::move(key_id)) {}
ModelSigner::~ModelSigner() = default;

absl::StatusOr<std::shared_ptr<const ModelSigner>> ModelSigner::Load(
    const std::string& pem_path) {
  SHOAL_ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(pem_path, "model-signing key"));
  return FromPem(pem, absl::StrCat("model-signing key '", pem_path, "'"));
}

absl::StatusOr<std::shared_ptr<const ModelSigner>> ModelSigner::FromPem(
    absl::string_view pem, absl::string_view source) {
  BioPtr bio = MemoryBio(pem);
  if (bio == nullptr) return openssl::InternalError("allocating a memory BIO");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  const std::string errors = openssl::DrainErrors();
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, " holds ", PemLabelHint(pem),
        ", not an Ed25519 private key in PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\", "
        "model-signing.key from `shoal certs`)",
        errors.empty() ? "" : absl::StrCat(" [", errors, "]")));
  }
  SHOAL_RETURN_IF_ERROR(CheckEd25519(pkey.get(), source));
  SHOAL_ASSIGN_OR_RETURN(std::string key_id, KeyId(pkey.get()));
  auto key = std::make_unique<Key>();
  key->pkey = std::move(pkey);
  return std::shared_ptr<const ModelSigner>(new ModelSigner(std::move(key), std::move(key_id)));
}

absl::StatusOr<std::string> ModelSigner::Sign(const SignedModel& model) const {
  SHOAL_ASSIGN_OR_RETURN(const std::string message, ModelSigningMessage(model));
  // A context per call: the key is shared, the context is not.
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::string signature(kModelSignatureBytes, '\0');
  size_t len = signature.size();
  // Ed25519 hashes internally (no digest is named) and signs in one shot.
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      len != kModelSignatureBytes) {
    return openssl::InternalError(absl::StrCat("signing ", SignedWhat(model)));
  }
  return signature;
}

// ---- ModelVerifier ----

struct ModelVerifier::Key {
  PkeyPtr pkey;
};

ModelVerifier::ModelVerifier(std::unique_ptr<Key> key, std::string key_id)
    : key_(std::move(key)), key_id_(std::move(key_id)) {}
ModelVerifier::~ModelVerifier() = default;

absl::StatusOr<std::shared_ptr<const ModelVerifier>> ModelVerifier::Load(
    const std::string& pem_path) {
  SHOAL_ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(pem_path, "model-signing public key"));
  return FromPem(pem, absl::StrCat("model-signing public key '", pem_path, "'"));
}

absl::StatusOr<std::shared_ptr<const ModelVerifier>> ModelVerifier::FromPem(
    absl::string_view pem, absl::string_view source) {
  BioPtr bio = MemoryBio(pem);
  if (bio == nullptr) return openssl::InternalError("allocating a memory BIO");
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  const std::string errors = openssl::DrainErrors();
  if (pkey == nullptr) {
    const std::string hint = PemLabelHint(pem);
    return absl::InvalidArgumentError(absl::StrCat(
        source, " holds ", hint,
        ", not an Ed25519 public key in PEM (\"-----BEGIN PUBLIC KEY-----\", "
        "model-signing.pub from `shoal certs`)",
        hint == "a private key" ? "; devices must be given the public key only" : "",
        errors.empty() ? "" : absl::StrCat(" [", errors, "]")));
  }
  SHOAL_RETURN_IF_ERROR(CheckEd25519(pkey.get(), source));
  SHOAL_ASSIGN_OR_RETURN(std::string key_id, KeyId(pkey.get()));
  auto key = std::make_unique<Key>();
  key->pkey = std::move(pkey);
  return std::shared_ptr<const ModelVerifier>(
      new ModelVerifier(std::move(key), std::move(key_id)));
}

absl::Status ModelVerifier::Verify(const SignedModel& model, absl::string_view signature) const {
  const std::string what = SignedWhat(model);
  if (model.weights_sha256.size() != kSha256Bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": a SHA-256 digest is 32 bytes, got ",
                                                   model.weights_sha256.size()));
  }
  if (signature.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(what, " has no signature"));
  }
  if (signature.size() != kModelSignatureBytes) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, "'s signature does not verify with the model-signing key ", key_id_, " (",
        signature.size(),
        " bytes, an Ed25519 signature has 64); the model was altered or signed with another "
        "key"));
  }
  // The spec and code digest come from a manifest or the wire: one that no
  // server would sign is refused as such, not as a caller's bug.
  absl::StatusOr<std::string> message = ModelSigningMessage(model);
  if (message.ok()) {
    SHOAL_ASSIGN_OR_RETURN(const bool valid, VerifyMessage(*message, signature));
    if (valid) return absl::OkStatus();
  }
  if (model.serving) {
    // A training version's genuine signature offered as a serving one.
    SignedModel training = model;
    training.serving.reset();
    absl::StatusOr<std::string> as_training = ModelSigningMessage(training);
    if (as_training.ok()) {
      SHOAL_ASSIGN_OR_RETURN(const bool valid, VerifyMessage(*as_training, signature));
      if (valid) {
        return absl::PermissionDeniedError(absl::StrCat(
            what, " carries a training version's signature, not a serving version's: only a "
                  "promotion on the server makes a serving version"));
      }
    }
  } else {
    SHOAL_ASSIGN_OR_RETURN(
        const bool v1,
        VerifyMessage(ModelSigningMessageV1(model.version, model.weights_sha256), signature));
    if (v1) {
      return absl::PermissionDeniedError(absl::StrCat(
          what, " was signed by an older Shoal server (signature format ", kModelSigningDomainV1,
          "), which signed the weights but not the model's code, so the code it would run "
          "is unchecked; use a model signed by a current server (",
          kModelSigningDomain, ")"));
    }
  }
  if (!message.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        message.status().message(), "; no server signs such a model, so it is refused"));
  }
  return absl::PermissionDeniedError(absl::StrCat(
      what, "'s signature does not verify with the model-signing key ", key_id_,
      " (Ed25519 check failed); the model (weights, spec",
      model.serving ? ", code or origin" : " or code",
      ") was altered or signed with another key"));
}

absl::StatusOr<bool> ModelVerifier::VerifyMessage(absl::string_view message,
                                                  absl::string_view signature) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1) {
    return openssl::InternalError("verifying a model signature");
  }
  const int ok = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  openssl::DrainErrors();
  return ok == 1;
}

// ---- key generation ----

absl::StatusOr<ModelSigningKeyPem> GenerateModelSigningKey() {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (pkey == nullptr) return openssl::InternalError("generating an Ed25519 key pair");
  const auto to_pem = [&](bool private_key) -> absl::StatusOr<std::string> {
    BioPtr bio(BIO_new(BIO_s_mem()));
    const int written =
        bio == nullptr ? 0
        : private_key
            ? PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr)
            : PEM_write_bio_PUBKEY(bio.get(), pkey.get());
    if (written != 1) return openssl::InternalError("writing an Ed25519 key as PEM");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(size));
  };
  ModelSigningKeyPem out;
  SHOAL_ASSIGN_OR_RETURN(out.private_pem, to_pem(true));
  SHOAL_ASSIGN_OR_RETURN(out.public_pem, to_pem(false));
  return out;
}

}  // namespace shoal
