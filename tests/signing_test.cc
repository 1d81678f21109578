// Model signing with real Ed25519 keys: the signed message's format, what
// verification refuses, the key files it accepts, the model store signing
// every version, and offline inference refusing what does not verify.
#include "common/signing.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/inference.h"
#include "client/model.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_store.h"
#include "tests/signing_testing.h"
#include "tests/subprocess.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Digest(const std::string& text) { return Sha256(text); }

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = testing::WriteSigningKeys(dir_, "model-signing");
    other_ = testing::WriteSigningKeys(dir_, "other");
    signer_ = *ModelSigner::Load(keys_.private_key);
    verifier_ = *ModelVerifier::Load(keys_.public_key);
    other_verifier_ = *ModelVerifier::Load(other_.public_key);
  }

  testing::TempDir dir_;
  testing::SigningKeyFiles keys_;
  testing::SigningKeyFiles other_;
  std::shared_ptr<const ModelSigner> signer_;
  std::shared_ptr<const ModelVerifier> verifier_;
  std::shared_ptr<const ModelVerifier> other_verifier_;
};

// Logreg is what a signature over a built-in model covers.
SignedModel Logreg(int64_t version, const std::string& digest) {
  return SignedModel{version, digest, "logreg", ""};
}

// Script is what a signature over a TorchScript model covers.
SignedModel Script(int64_t version, const std::string& digest, const std::string& code) {
  return SignedModel{version, digest, kTorchScriptModelSpec, Sha256(code)};
}

// U32 is a length prefix as the message writes it (big-endian).
std::string U32(uint32_t n) {
  return std::string{static_cast<char>(n >> 24), static_cast<char>((n >> 16) & 0xff),
                     static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)};
}

TEST(ModelSigningMessageTest, IsDomainVersionAndLengthPrefixedDigestSpecAndCode) {
  const std::string digest(32, '\xab');
  const std::string code(32, '\xcd');
  const std::string head = std::string("shoal-model-v2") + '\0' +
                           std::string("\x00\x00\x00\x01\x02\x03\x04\x05", 8) + U32(32) + digest;
  // A built-in: its name, and an empty code field.
  absl::StatusOr<std::string> builtin =
      ModelSigningMessage(SignedModel{0x0102030405, digest, "cnn", ""});
  ASSERT_TRUE(builtin.ok()) << builtin.status();
  EXPECT_EQ(*builtin, head + U32(3) + "cnn" + U32(0));
  EXPECT_EQ(builtin->size(), 15u + 8 + 36 + 7 + 4);
  // TorchScript: the canonical spec and the code's digest.
  absl::StatusOr<std::string> script =
      ModelSigningMessage(SignedModel{0x0102030405, digest, "torchscript", code});
  ASSERT_TRUE(script.ok()) << script.status();
  EXPECT_EQ(*script, head + U32(11) + "torchscript" + U32(32) + code);
  // Negative versions are two's complement (never signed in practice).
  EXPECT_EQ(ModelSigningMessage(Logreg(-1, digest))->substr(15, 8), std::string(8, '\xff'));
}

TEST(ModelSigningMessageTest, RefusesPathsUnknownShapesAndSpecsThatDisagreeWithTheCode) {
  const std::string digest(32, '\xab');
  const std::string code(32, '\xcd');
  const auto refused = [](const SignedModel& m) {
    return ModelSigningMessage(m).status().code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(refused(SignedModel{3, std::string(31, 'x'), "cnn", ""}));
  EXPECT_TRUE(refused(SignedModel{3, "", "cnn", ""}));
  // A path is never a spec: the code is named by its digest, not its file.
  EXPECT_TRUE(refused(SignedModel{3, digest, "/models/tiny.pt", code}));
  EXPECT_TRUE(refused(SignedModel{3, digest, "tiny.pt", code}));
  EXPECT_TRUE(refused(SignedModel{3, digest, "", ""}));
  EXPECT_TRUE(refused(SignedModel{3, digest, std::string(65, 'a'), ""}));
  EXPECT_TRUE(refused(SignedModel{3, digest, "CNN", ""}));
  // TorchScript needs its code's digest; a built-in has none.
  EXPECT_TRUE(refused(SignedModel{3, digest, "torchscript", ""}));
  EXPECT_TRUE(refused(SignedModel{3, digest, "torchscript", std::string(31, 'x')}));
  EXPECT_TRUE(refused(SignedModel{3, digest, "cnn", code}));
  EXPECT_FALSE(refused(SignedModel{3, digest, std::string(64, 'a'), ""}));
}

// Serving is what a signature over serving version `serving` covers.
SignedModel Serving(int64_t serving, const std::string& digest, const std::string& run,
                    int64_t training_version) {
  SignedModel m = Logreg(serving, digest);
  m.serving = ServingOrigin{run, training_version};
  return m;
}

TEST(ModelSigningMessageTest, AServingVersionHasItsOwnDomainAndCoversItsOrigin) {
  const std::string digest(32, '\xab');
  absl::StatusOr<std::string> m = ModelSigningMessage(Serving(3, digest, "run-7", 0x0102));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, std::string("shoal-serving-v1") + '\0' + std::string(7, '\0') + '\x03' +
                    U32(32) + digest + U32(6) + "logreg" + U32(0) + U32(5) + "run-7" +
                    std::string(6, '\0') + "\x01\x02");
  const auto refused = [&](const std::string& run, int64_t serving, int64_t training) {
    return ModelSigningMessage(Serving(serving, digest, run, training)).status().code() ==
           absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(refused("", 3, 0));
  EXPECT_TRUE(refused(std::string(129, 'r'), 3, 0));
  EXPECT_TRUE(refused("../run", 3, 0));
  EXPECT_TRUE(refused("run 7", 3, 0));
  EXPECT_TRUE(refused("run-7", 0, 0));   // serving versions start at 1
  EXPECT_TRUE(refused("run-7", 3, -1));  // training versions at 0
  EXPECT_FALSE(refused(std::string(128, 'r'), 1, 0));
}

// A training version's signature never makes it a serving version (only a
// promotion on the server does), and a serving signature does not pass for
// a training version, another serving version or another origin.
TEST_F(SigningTest, ServingAndTrainingSignaturesNeverPassAsEachOther) {
  const std::string digest = Digest("weights");
  const std::string training_sig = *signer_->Sign(Logreg(5, digest));
  absl::Status as_serving = verifier_->Verify(Serving(5, digest, "run-1", 5), training_sig);
  EXPECT_EQ(as_serving.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(as_serving.message(), HasSubstr("serving version 5 carries a training version's "
                                              "signature"));

  const std::string serving_sig = *signer_->Sign(Serving(2, digest, "run-1", 5));
  EXPECT_TRUE(verifier_->Verify(Serving(2, digest, "run-1", 5), serving_sig).ok());
  EXPECT_EQ(verifier_->Verify(Logreg(2, digest), serving_sig).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier_->Verify(Serving(3, digest, "run-1", 5), serving_sig).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier_->Verify(Serving(2, digest, "run-2", 5), serving_sig).code(),
            absl::StatusCode::kPermissionDenied);
  absl::Status origin = verifier_->Verify(Serving(2, digest, "run-1", 4), serving_sig);
  EXPECT_EQ(origin.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(origin.message(), HasSubstr("serving version 2's signature does not verify"));
  EXPECT_THAT(origin.message(), HasSubstr("code or origin"));
  EXPECT_EQ(other_verifier_->Verify(Serving(2, digest, "run-1", 5), serving_sig).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SigningTest, RoundTripAndTheSignatureIsPlainEd25519OverTheDocumentedMessage) {
  const std::string digest = Digest("weights of version 7");
  const std::string code = "TorchScript bytes";
  absl::StatusOr<std::string> sig = signer_->Sign(Script(7, digest, code));
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), kModelSignatureBytes);
  EXPECT_TRUE(verifier_->Verify(Script(7, digest, code), *sig).ok());
  EXPECT_EQ(signer_->key_id(), verifier_->key_id());
  EXPECT_EQ(signer_->key_id().size(), 16u);
  EXPECT_NE(verifier_->key_id(), other_verifier_->key_id());
  // Ed25519 is deterministic (RFC 8032).
  EXPECT_EQ(*signer_->Sign(Script(7, digest, code)), *sig);

  // Checked with OpenSSL directly over a message built by hand, so the
  // format documented in signing.h is what is actually signed.
  std::string message = std::string("shoal-model-v2") + '\0' + std::string(7, '\0') + '\x07' +
                        U32(32) + digest + U32(11) + "torchscript" + U32(32) + Sha256(code);
  std::string pem = *ReadFile(keys_.public_key);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(pkey, nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig->data()),
                             sig->size(),
                             reinterpret_cast<const unsigned char*>(message.data()),
                             message.size()),
            1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
}

TEST_F(SigningTest, AFlippedBitInTheSignatureDigestOrVersionIsRefused) {
  const std::string digest = Digest("weights");
  const std::string sig = *signer_->Sign(Logreg(7, digest));
  for (size_t byte : {size_t{0}, size_t{31}, size_t{63}}) {
    std::string bad = sig;
    bad[byte] ^= 0x01;
    absl::Status s = verifier_->Verify(Logreg(7, digest), bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << byte;
    EXPECT_THAT(s.message(), HasSubstr("model version 7's signature does not verify with the "
                                       "model-signing key " + verifier_->key_id()));
  }
  std::string bad_digest = digest;
  bad_digest[5] ^= 0x80;
  EXPECT_EQ(verifier_->Verify(Logreg(7, bad_digest), sig).code(),
            absl::StatusCode::kPermissionDenied);
  // The version is signed: genuine weights cannot be replayed as another round.
  absl::Status replay = verifier_->Verify(Logreg(8, digest), sig);
  EXPECT_EQ(replay.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(replay.message(), HasSubstr("model version 8's signature does not verify"));
  EXPECT_EQ(verifier_->Verify(Logreg(7 ^ (int64_t{1} << 40), digest), sig).code(),
            absl::StatusCode::kPermissionDenied);
  // Truncated or padded signatures.
  EXPECT_EQ(verifier_->Verify(Logreg(7, digest), sig.substr(0, 63)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier_->Verify(Logreg(7, digest), sig + "x").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SigningTest, TheSignatureCoversTheSpecAndTheCode) {
  const std::string digest = Digest("weights");
  const std::string builtin_sig = *signer_->Sign(Logreg(7, digest));
  // Another built-in with the same weights and version.
  absl::Status swapped = verifier_->Verify(SignedModel{7, digest, "cnn", ""}, builtin_sig);
  EXPECT_EQ(swapped.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(swapped.message(), HasSubstr("(weights, spec or code) was altered"));

  const std::string script_sig = *signer_->Sign(Script(7, digest, "genuine code"));
  // Other code under the same spec, weights and version.
  EXPECT_EQ(verifier_->Verify(Script(7, digest, "other code"), script_sig).code(),
            absl::StatusCode::kPermissionDenied);
  // The same weights passed off as a built-in, or the code dropped.
  EXPECT_EQ(verifier_->Verify(Logreg(7, digest), script_sig).code(),
            absl::StatusCode::kPermissionDenied);
  absl::Status no_code = verifier_->Verify(SignedModel{7, digest, "torchscript", ""}, script_sig);
  EXPECT_EQ(no_code.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(no_code.message(), HasSubstr("needs the 32-byte SHA-256 of its code"));
  // A path as the spec is refused as unsignable, never looked up.
  absl::Status path = verifier_->Verify(
      SignedModel{7, digest, "/tmp/other.pt", Sha256("genuine code")}, script_sig);
  EXPECT_EQ(path.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(path.message(), HasSubstr("is not canonical"));
}

// SignV1 signs format v1's message (version and weights only), as servers
// did before the model's code was signed.
std::string SignV1(const std::string& private_key_path, int64_t version,
                   const std::string& digest) {
  std::string message = std::string("shoal-model-v1") + '\0';
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<char>((static_cast<uint64_t>(version) >> shift) & 0xff));
  }
  message += digest;
  const std::string pem = *ReadFile(private_key_path);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  std::string sig(64, '\0');
  size_t len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey), 1);
  EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()),
            1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return sig;
}

TEST_F(SigningTest, AVersion1SignatureIsRefusedAsSignedByAnOlderServer) {
  const std::string digest = Digest("weights");
  const std::string v1 = SignV1(keys_.private_key, 7, digest);
  // Whatever spec the manifest or task claims, and with no spec at all (an
  // older server names none).
  for (const SignedModel& claim :
       {Logreg(7, digest), Script(7, digest, "code"), SignedModel{7, digest, "", ""},
        SignedModel{7, digest, "/tmp/evil.pt", ""}}) {
    absl::Status refused = verifier_->Verify(claim, v1);
    EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << claim.spec;
    EXPECT_THAT(refused.message(), HasSubstr("model version 7 was signed by an older Shoal "
                                             "server (signature format shoal-model-v1)"))
        << claim.spec;
  }
  // Another version's v1 signature is not mistaken for one.
  EXPECT_THAT(verifier_->Verify(Logreg(8, digest), v1).message(), HasSubstr("does not verify"));
}

TEST_F(SigningTest, AMissingSignatureOrAnotherKeysSignatureIsRefused) {
  const std::string digest = Digest("weights");
  absl::Status none = verifier_->Verify(Logreg(7, digest), "");
  EXPECT_EQ(none.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(none.message(), "model version 7 has no signature");

  const std::string sig = *signer_->Sign(Logreg(7, digest));
  absl::Status foreign = other_verifier_->Verify(Logreg(7, digest), sig);
  EXPECT_EQ(foreign.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(foreign.message(), HasSubstr(other_verifier_->key_id()));

  EXPECT_EQ(signer_->Sign(Logreg(7, "short")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(verifier_->Verify(Logreg(7, "short"), sig).code(), absl::StatusCode::kInvalidArgument);
}

// PrivatePem writes `pkey` as PKCS#8 PEM, encrypted with `password` if any.
std::string PrivatePem(EVP_PKEY* pkey, const char* password = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (password == nullptr) {
    PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), password,
                                  static_cast<int>(strlen(password)), nullptr, nullptr);
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, size);
  BIO_free(bio);
  return pem;
}

std::string PublicPem(EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, pkey);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, size);
  BIO_free(bio);
  return pem;
}

TEST_F(SigningTest, KeyFilesOfTheWrongKindAreRefusedWithAClearError) {
  // The key files cross over: a public key is not a signing key, and a
  // device must never be handed the private one.
  absl::StatusOr<std::shared_ptr<const ModelSigner>> swapped =
      ModelSigner::Load(keys_.public_key);
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(swapped.status().message(), HasSubstr(keys_.public_key));
  EXPECT_THAT(swapped.status().message(), HasSubstr("holds a public key"));
  absl::StatusOr<std::shared_ptr<const ModelVerifier>> leaked =
      ModelVerifier::Load(keys_.private_key);
  EXPECT_EQ(leaked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(leaked.status().message(), HasSubstr("holds a private key"));
  EXPECT_THAT(leaked.status().message(), HasSubstr("public key only"));

  // Another algorithm: an EC P-256 key pair.
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(ec, nullptr);
  absl::StatusOr<std::shared_ptr<const ModelSigner>> ec_signer =
      ModelSigner::FromPem(PrivatePem(ec), "ec.key");
  EXPECT_EQ(ec_signer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ec_signer.status().message(), HasSubstr("ec.key holds a key of type EC"));
  EXPECT_THAT(ec_signer.status().message(), HasSubstr("needs an Ed25519 key"));
  absl::StatusOr<std::shared_ptr<const ModelVerifier>> ec_verifier =
      ModelVerifier::FromPem(PublicPem(ec), "ec.pub");
  EXPECT_EQ(ec_verifier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ec_verifier.status().message(), HasSubstr("needs an Ed25519 key"));

  // An encrypted key is refused without prompting for a passphrase.
  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(ed, nullptr);
  absl::StatusOr<std::shared_ptr<const ModelSigner>> encrypted =
      ModelSigner::FromPem(PrivatePem(ed, "secret"), "enc.key");
  EXPECT_EQ(encrypted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(encrypted.status().message(), HasSubstr("encrypted private key"));
  // ... while the same key unencrypted loads.
  EXPECT_TRUE(ModelSigner::FromPem(PrivatePem(ed)).ok());
  EVP_PKEY_free(ed);
  EVP_PKEY_free(ec);

  // Garbage, a damaged key, a missing file.
  absl::StatusOr<std::shared_ptr<const ModelVerifier>> garbage =
      ModelVerifier::FromPem("not a key at all\n", "junk.pub");
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(garbage.status().message(), HasSubstr("junk.pub holds no PEM data"));
  std::string damaged = *ReadFile(keys_.private_key);
  damaged[40] = damaged[40] == 'A' ? 'B' : 'A';
  damaged.erase(45, 8);
  EXPECT_EQ(ModelSigner::FromPem(damaged).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::shared_ptr<const ModelVerifier>> missing =
      ModelVerifier::Load(dir_.File("nope.pub"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.pub' does not exist"));
}

Parameters Weights(float value) {
  Parameters p;
  p.Add("w", at::full({3, 2}, value));
  p.Add("b", at::full({2}, -value));
  return p;
}

TEST_F(SigningTest, AStoreWithASignerSignsEveryVersionOnDiskAndForServing) {
  auto store = *ModelStore::Open(dir_.File("models"), "test", signer_);
  for (int64_t v = 0; v < 3; ++v) {
    absl::StatusOr<ModelRecord> saved = store->Save(v, Weights(static_cast<float>(v)), {});
    ASSERT_TRUE(saved.ok()) << saved.status();
    EXPECT_EQ(saved->signature.size(), kModelSignatureBytes);
  }
  for (int64_t v = 0; v < 3; ++v) {
    // On disk: the manifest's signature verifies over the bytes on disk.
    ModelRecord record = *ReadModelRecord(store->dir(), v);
    const std::string payload = *ReadModelPayload(store->dir(), record);
    EXPECT_TRUE(
        verifier_->Verify(SignedModel{v, Sha256(payload), "test", ""}, record.signature).ok())
        << v;
    EXPECT_TRUE(LoadModelParameters(store->dir(), nullptr, v, verifier_.get()).ok()) << v;
    // Served (the newest from memory, the others from disk): the same
    // signature, over the digest the download's header carries.
    absl::StatusOr<StoredModel> served = store->Get(v);
    ASSERT_TRUE(served.ok()) << served.status();
    EXPECT_EQ(served->record.signature, record.signature) << v;
    EXPECT_TRUE(verifier_
                    ->Verify(SignedModel{v, served->payload->header().sha256(), "test", ""},
                             served->record.signature)
                    .ok())
        << v;
  }
  EXPECT_EQ(store->Get(kLatestVersion)->record.version, 2);
  // The manifest carries it as 128 hex digits.
  EXPECT_THAT(*ReadFile(store->dir() + "/latest.json"),
              HasSubstr(absl::StrCat("\"signature\": \"", HexEncode(store->Latest()->signature),
                                     "\"")));
  // Another key does not verify them.
  EXPECT_EQ(LoadModelParameters(store->dir(), nullptr, 1, other_verifier_.get()).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SigningTest, AStoreWithoutASignerWritesUnsignedManifests) {
  auto store = *ModelStore::Open(dir_.File("models"), "test");
  ASSERT_TRUE(store->Save(0, Weights(1), {}).ok());
  EXPECT_TRUE(store->Get(0)->record.signature.empty());
  EXPECT_THAT(*ReadFile(store->dir() + "/latest.json"), ::testing::Not(HasSubstr("signature")));
  EXPECT_TRUE(LoadModelParameters(store->dir()).ok());
  absl::Status refused = LoadModelParameters(store->dir(), nullptr, 0, verifier_.get()).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("model version 0 has no signature"));
}

TEST_F(SigningTest, AManifestWhoseSignatureIsNotHexIsRefused) {
  auto store = *ModelStore::Open(dir_.File("models"), "test", signer_);
  ASSERT_TRUE(store->Save(0, Weights(1), {}).ok());
  std::string manifest = *ReadFile(store->dir() + "/latest.json");
  const size_t at = manifest.find("\"signature\": \"") + 14;
  manifest[at] = 'z';
  ASSERT_TRUE(WriteFileAtomically(store->dir() + "/latest.json", manifest).ok());
  absl::StatusOr<ModelRecord> record = ReadModelRecord(store->dir());
  EXPECT_EQ(record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(record.status().message(), HasSubstr("signature that is not hex"));
}

// ---- offline inference ----

class SignedInferenceTest : public SigningTest {
 protected:
  void SetUp() override {
    SigningTest::SetUp();
    auto model = *client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), /*seed=*/3);
    params_ = model->GetParameters().Clone();
    auto store = *ModelStore::Open(models_, "logreg-1x28x28-10", signer_);
    ASSERT_TRUE(store->Save(0, Weights(0), {}).ok());
    ASSERT_TRUE(store->Save(1, params_, {}).ok());
  }

  absl::Status Load(const ModelVerifier* verifier) {
    return client::LoadStoredModel(models_, nullptr, "", verifier).status();
  }

  // Rewrite stores `payload` as the newest `version` with `signature`, and
  // a manifest whose SHA-256 matches: what an attacker with write access to
  // the directory, but not the signing key, can do.
  void Rewrite(int64_t version, const std::string& payload, const std::string& signature) {
    ModelRecord record;
    record.version = version;
    record.model_spec = "logreg-1x28x28-10";
    record.signature = signature;
    ASSERT_TRUE(WriteModelVersion(models_, record, payload).ok());
  }

  std::string models_ = dir_.File("models");
  Parameters params_;
};

TEST_F(SignedInferenceTest, TheRightKeyLoadsTheModel) {
  ModelRecord record;
  absl::StatusOr<std::unique_ptr<client::Model>> model =
      client::LoadStoredModel(models_, &record, "", verifier_.get());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(record.version, 1);
  EXPECT_TRUE(at::equal((*model)->GetParameters().tensor(0), params_.tensor(0)));
}

TEST_F(SignedInferenceTest, TamperedWeightsWithAnUpdatedManifestAreRefused) {
  const ModelRecord genuine = *ReadModelRecord(models_);
  Parameters tampered = params_.Clone();
  tampered.mutable_tensor(0).view(-1)[0].add_(0.5);
  Rewrite(1, SerializeParameters(tampered), genuine.signature);
  // Without a key the manifest's own SHA-256 is all there is: it loads.
  EXPECT_TRUE(Load(nullptr).ok());
  absl::Status refused = Load(verifier_.get());
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("model version 1's signature does not verify"));
  EXPECT_THAT(refused.message(), HasSubstr(models_));
}

TEST_F(SignedInferenceTest, AGenuineModelRelabelledAsAnotherVersionIsRefused) {
  const ModelRecord genuine = *ReadModelRecord(models_);
  const std::string payload = *ReadModelPayload(models_, genuine);
  Rewrite(2, payload, genuine.signature);
  EXPECT_EQ(Load(verifier_.get()).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(SignedInferenceTest, AWrongKeyOrAnUnsignedModelIsRefused) {
  absl::Status foreign = Load(other_verifier_.get());
  EXPECT_EQ(foreign.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(foreign.message(), HasSubstr(other_verifier_->key_id()));

  const ModelRecord genuine = *ReadModelRecord(models_);
  Rewrite(1, *ReadModelPayload(models_, genuine), "");
  absl::Status unsigned_model = Load(verifier_.get());
  EXPECT_EQ(unsigned_model.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(unsigned_model.message(), HasSubstr("model version 1 has no signature"));
}

// ---- the model's code ----

// SignedTorchScriptTest: the server's signed store of a TorchScript model,
// and what becomes of it when someone who can write the directory, but does
// not hold the signing key, swaps the code the model runs.
class SignedTorchScriptTest : public SigningTest {
 protected:
  void SetUp() override {
    SigningTest::SetUp();
    auto model = *client::CreateModel(*client::ParseModelSpec(SHOAL_TINY_TORCHSCRIPT));
    params_ = model->GetParameters().Clone();
    auto store = *ModelStore::Open(models_, SHOAL_TINY_TORCHSCRIPT, signer_);
    ASSERT_TRUE(store->Save(1, params_, {}).ok());
  }

  // EditManifest sets `key` in the newest manifest to `value`, as a text
  // editor would: nothing else changes.
  void EditManifest(const std::string& key, const std::string& value) {
    nlohmann::json manifest = nlohmann::json::parse(*ReadFile(models_ + "/latest.json"));
    manifest[key] = value;
    ASSERT_TRUE(WriteFileAtomically(models_ + "/latest.json", manifest.dump(2)).ok());
  }

  absl::Status Load(const std::string& spec_override = "") {
    return client::LoadStoredModel(models_, nullptr, spec_override, verifier_.get()).status();
  }

  // WriteImage writes one 28x28 binary PGM for `shoal infer`.
  std::string WriteImage() {
    std::string pgm = "P5\n28 28\n255\n";
    for (int i = 0; i < 28 * 28; ++i) pgm.push_back(static_cast<char>(i % 251));
    const std::string path = dir_.File("image.pgm");
    EXPECT_TRUE(WriteFileAtomically(path, pgm).ok());
    return path;
  }

  std::string models_ = dir_.File("models");
  Parameters params_;
};

TEST_F(SignedTorchScriptTest, TheGenuineCodeLoadsWithTheSignature) {
  absl::Status loaded = Load();
  EXPECT_TRUE(loaded.ok()) << loaded;
}

// The attack of issue 14, item 2: the manifest's `model` now names other
// TorchScript code with the same parameter names. The weights, their
// SHA-256 and the signature are untouched.
TEST_F(SignedTorchScriptTest, AManifestPointedAtOtherTorchScriptCodeIsRefused) {
  EditManifest("model", SHOAL_NEGATED_TORCHSCRIPT);
  absl::Status refused = Load();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
}

TEST_F(SignedTorchScriptTest, ShoalInferRefusesAManifestPointedAtOtherCode) {
  EditManifest("model", SHOAL_NEGATED_TORCHSCRIPT);
  testing::Subprocess infer({SHOAL_BINARY, "infer", "--model-key", keys_.public_key,
                             "--model-dir", models_, "--input", WriteImage()},
                            dir_.File("infer.log"));
  EXPECT_EQ(infer.Wait(absl::Seconds(60)), 1) << infer.Log();
  EXPECT_THAT(infer.Log(), ::testing::Not(HasSubstr("signature verified"))) << infer.Log();
}

TEST_F(SignedTorchScriptTest, TheStoreKeepsTheCodeOnceByItsHashAndNoPath) {
  auto store = *ModelStore::Open(models_, SHOAL_TINY_TORCHSCRIPT, signer_);
  ASSERT_TRUE(store->Save(2, params_, {}).ok());
  const std::string code = *ReadFile(SHOAL_TINY_TORCHSCRIPT);
  std::vector<std::string> code_files;
  for (const auto& entry : std::filesystem::directory_iterator(models_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("code-", 0) == 0) code_files.push_back(name);
  }
  EXPECT_THAT(code_files, ::testing::ElementsAre(ModelCodeFile(Sha256Hex(code))));
  for (int64_t v : {1, 2}) {
    const ModelRecord record = *ReadModelRecord(models_, v);
    EXPECT_EQ(record.model_spec, kTorchScriptModelSpec);
    EXPECT_EQ(record.code_sha256_hex, Sha256Hex(code));
    const std::string manifest = *ReadFile(absl::StrFormat("%s/model-%06d.json", models_, v));
    EXPECT_THAT(manifest, Not(HasSubstr(SHOAL_TINY_TORCHSCRIPT)));
    EXPECT_THAT(manifest, HasSubstr(absl::StrCat("\"code_sha256\": \"", Sha256Hex(code), "\"")));
  }
  // Served by hash, from memory.
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> served = store->Code(Sha256(code));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->payload(), code);
  EXPECT_EQ(store->Code(Sha256("other")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SignedTorchScriptTest, OtherCodeNamedByItsHashInTheManifestIsRefused) {
  // The attack done thoroughly: the other code stored as the store would,
  // and the manifest naming its hash.
  const std::string negated = *ReadFile(SHOAL_NEGATED_TORCHSCRIPT);
  ASSERT_TRUE(WriteModelCodeFile(models_, negated).ok());
  EditManifest("code_sha256", Sha256Hex(negated));
  absl::Status refused = Load();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("(weights, spec or code) was altered"));
}

TEST_F(SignedTorchScriptTest, TamperedCodeBytesInTheStoreAreRefused) {
  const std::string hex = ReadModelRecord(models_)->code_sha256_hex;
  ASSERT_TRUE(
      WriteFileAtomically(models_ + "/" + ModelCodeFile(hex), *ReadFile(SHOAL_NEGATED_TORCHSCRIPT))
          .ok());
  // Refused with or without the key: the code's hash is checked as it is read.
  for (const ModelVerifier* verifier :
       {verifier_.get(), static_cast<const ModelVerifier*>(nullptr)}) {
    absl::Status refused = client::LoadStoredModel(models_, nullptr, "", verifier).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("does not match the SHA-256 in its name"));
  }
}

TEST_F(SignedTorchScriptTest, AnOverrideMustBeTheSignedCode) {
  // The very code the signature covers, from another file: accepted.
  EXPECT_TRUE(Load(SHOAL_TINY_TORCHSCRIPT).ok());
  absl::Status other = Load(SHOAL_NEGATED_TORCHSCRIPT);
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied) << other;
  EXPECT_THAT(other.message(), HasSubstr("is not the code the signature"));
  EXPECT_EQ(Load("logreg").code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(SignedTorchScriptTest, AManifestNamingAPathIsNotFollowedEvenUnverified) {
  // What a manifest written before the code was stored looks like.
  EditManifest("model", SHOAL_NEGATED_TORCHSCRIPT);
  auto legacy = client::LoadStoredModel(models_, nullptr, "", nullptr);
  EXPECT_EQ(legacy.status().code(), absl::StatusCode::kFailedPrecondition) << legacy.status();
  EXPECT_THAT(legacy.status().message(), HasSubstr("older Shoal"));
  // Unverified, the user may still name code by hand.
  EXPECT_TRUE(client::LoadStoredModel(models_, nullptr, SHOAL_TINY_TORCHSCRIPT, nullptr).ok());
}

TEST_F(SignedTorchScriptTest, ShoalInferRunsTheSignedCodeAndSaysWhatWasVerified) {
  testing::Subprocess infer({SHOAL_BINARY, "infer", "--model-key", keys_.public_key, "--model-dir",
                             models_, "--input", WriteImage()},
                            dir_.File("infer.log"));
  ASSERT_EQ(infer.Wait(absl::Seconds(60)), 0) << infer.Log();
  EXPECT_THAT(infer.Log(), HasSubstr(absl::StrCat(
                               "model version 1 (torchscript, code SHA-256 ",
                               Sha256Hex(*ReadFile(SHOAL_TINY_TORCHSCRIPT)).substr(0, 16), ")")));
  EXPECT_THAT(infer.Log(), HasSubstr("signature verified over weights, spec and code"));
}

TEST_F(SignedInferenceTest, ASwappedBuiltinSpecIsRefused) {
  // logreg's weights relabelled as another built-in: refused by the
  // signature before the architecture is built.
  for (const char* spec : {"cnn", "2nn"}) {
    nlohmann::json manifest = nlohmann::json::parse(*ReadFile(models_ + "/latest.json"));
    manifest["model"] = spec;
    ASSERT_TRUE(WriteFileAtomically(models_ + "/latest.json", manifest.dump(2)).ok());
    absl::Status refused = Load(verifier_.get());
    EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << spec;
    EXPECT_THAT(refused.message(), HasSubstr("signature does not verify")) << spec;
  }
}

TEST_F(SigningTest, ShoalInferInsecureUnverifiedRunsAnUnsignedTorchScriptModel) {
  const std::string models = dir_.File("unsigned");
  auto store = *ModelStore::Open(models, SHOAL_TINY_TORCHSCRIPT);
  auto model = *client::CreateModel(*client::ParseModelSpec(SHOAL_TINY_TORCHSCRIPT));
  ASSERT_TRUE(store->Save(0, model->GetParameters().Clone(), {}).ok());
  std::string pgm = "P5\n28 28\n255\n" + std::string(28 * 28, '\x40');
  ASSERT_TRUE(WriteFileAtomically(dir_.File("image.pgm"), pgm).ok());
  testing::Subprocess infer({SHOAL_BINARY, "infer", "--insecure-unverified", "--model-dir", models,
                             "--input", dir_.File("image.pgm")},
                            dir_.File("infer.log"));
  ASSERT_EQ(infer.Wait(absl::Seconds(60)), 0) << infer.Log();
  EXPECT_THAT(infer.Log(), HasSubstr("signature NOT checked"));
  EXPECT_THAT(infer.Log(), HasSubstr("(torchscript, code SHA-256 "));
}

}  // namespace
}  // namespace shoal
