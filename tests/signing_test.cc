// Model signing with real Ed25519 keys: the signed message's format, what
// verification refuses, the key files it accepts, the model store signing
// every version, and offline inference refusing what does not verify.
#include "common/signing.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
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

TEST(ModelSigningMessageTest, IsDomainNulVersionBigEndianAndDigest) {
  const std::string digest(32, '\xab');
  std::string expected = "shoal-model-v1";
  expected.push_back('\0');
  expected += std::string("\x00\x00\x00\x01\x02\x03\x04\x05", 8);
  expected += digest;
  absl::StatusOr<std::string> message = ModelSigningMessage(0x0102030405, digest);
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->size(), 55u);
  EXPECT_EQ(*message, expected);
  // Negative versions are two's complement (never signed in practice).
  EXPECT_EQ(ModelSigningMessage(-1, digest)->substr(15, 8), std::string(8, '\xff'));
  EXPECT_EQ(ModelSigningMessage(3, std::string(31, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ModelSigningMessage(3, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SigningTest, RoundTripAndTheSignatureIsPlainEd25519OverTheDocumentedMessage) {
  const std::string digest = Digest("weights of version 7");
  absl::StatusOr<std::string> sig = signer_->Sign(7, digest);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), kModelSignatureBytes);
  EXPECT_TRUE(verifier_->Verify(7, digest, *sig).ok());
  EXPECT_EQ(signer_->key_id(), verifier_->key_id());
  EXPECT_EQ(signer_->key_id().size(), 16u);
  EXPECT_NE(verifier_->key_id(), other_verifier_->key_id());
  // Ed25519 is deterministic (RFC 8032).
  EXPECT_EQ(*signer_->Sign(7, digest), *sig);

  // Checked with OpenSSL directly over a message built by hand, so the
  // format documented in signing.h is what is actually signed.
  std::string message = std::string("shoal-model-v1") + '\0' + std::string(7, '\0') + '\x07' +
                        digest;
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
  const std::string sig = *signer_->Sign(7, digest);
  for (size_t byte : {size_t{0}, size_t{31}, size_t{63}}) {
    std::string bad = sig;
    bad[byte] ^= 0x01;
    absl::Status s = verifier_->Verify(7, digest, bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << byte;
    EXPECT_THAT(s.message(), HasSubstr("model version 7's signature does not verify with the "
                                       "model-signing key " + verifier_->key_id()));
  }
  std::string bad_digest = digest;
  bad_digest[5] ^= 0x80;
  EXPECT_EQ(verifier_->Verify(7, bad_digest, sig).code(), absl::StatusCode::kPermissionDenied);
  // The version is signed: genuine weights cannot be replayed as another round.
  absl::Status replay = verifier_->Verify(8, digest, sig);
  EXPECT_EQ(replay.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(replay.message(), HasSubstr("model version 8's signature does not verify"));
  EXPECT_EQ(verifier_->Verify(7 ^ (int64_t{1} << 40), digest, sig).code(),
            absl::StatusCode::kPermissionDenied);
  // Truncated or padded signatures.
  EXPECT_EQ(verifier_->Verify(7, digest, sig.substr(0, 63)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier_->Verify(7, digest, sig + "x").code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(SigningTest, AMissingSignatureOrAnotherKeysSignatureIsRefused) {
  const std::string digest = Digest("weights");
  absl::Status none = verifier_->Verify(7, digest, "");
  EXPECT_EQ(none.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(none.message(), "model version 7 has no signature");

  const std::string sig = *signer_->Sign(7, digest);
  absl::Status foreign = other_verifier_->Verify(7, digest, sig);
  EXPECT_EQ(foreign.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(foreign.message(), HasSubstr(other_verifier_->key_id()));

  EXPECT_EQ(signer_->Sign(7, "short").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(verifier_->Verify(7, "short", sig).code(), absl::StatusCode::kInvalidArgument);
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
    EXPECT_TRUE(verifier_->Verify(v, Sha256(payload), record.signature).ok()) << v;
    EXPECT_TRUE(LoadModelParameters(store->dir(), nullptr, v, verifier_.get()).ok()) << v;
    // Served (the newest from memory, the others from disk): the same
    // signature, over the digest the download's header carries.
    absl::StatusOr<StoredModel> served = store->Get(v);
    ASSERT_TRUE(served.ok()) << served.status();
    EXPECT_EQ(served->record.signature, record.signature) << v;
    EXPECT_TRUE(verifier_->Verify(v, served->payload->header().sha256(), served->record.signature)
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
    auto model = *client::CreateModel(client::ModelSpec{"logreg", ""}, /*seed=*/3);
    params_ = model->GetParameters().Clone();
    auto store = *ModelStore::Open(models_, "logreg", signer_);
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
    record.model_spec = "logreg";
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

}  // namespace
}  // namespace shoal
