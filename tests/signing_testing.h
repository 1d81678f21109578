// Model-signing keys for tests: fresh Ed25519 key pairs written as the PEM
// files `shoal certs` produces (model-signing.key, model-signing.pub).
#ifndef SHOAL_TESTS_SIGNING_TESTING_H_
#define SHOAL_TESTS_SIGNING_TESTING_H_

#include <memory>
#include <string>

#include "common/files.h"
#include "common/signing.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal::testing {

struct SigningKeyFiles {
  std::string private_key;  // DIR/NAME.key
  std::string public_key;   // DIR/NAME.pub
};

// WriteSigningKeys generates a key pair and writes it under `dir`.
inline SigningKeyFiles WriteSigningKeys(const TempDir& dir, const std::string& name) {
  absl::StatusOr<ModelSigningKeyPem> pem = GenerateModelSigningKey();
  EXPECT_TRUE(pem.ok()) << pem.status();
  SigningKeyFiles files{dir.File(name + ".key"), dir.File(name + ".pub")};
  EXPECT_TRUE(WriteFileAtomically(files.private_key, pem->private_pem).ok());
  EXPECT_TRUE(WriteFileAtomically(files.public_key, pem->public_pem).ok());
  return files;
}

// SigningKeys: a fresh key pair written under a folder, and loaded.
struct SigningKeys {
  SigningKeyFiles files;
  std::shared_ptr<const ModelSigner> signer;
  std::shared_ptr<const ModelVerifier> verifier;
};

inline SigningKeys MakeSigningKeys(const TempDir& dir, const std::string& name) {
  SigningKeys keys{WriteSigningKeys(dir, name), nullptr, nullptr};
  absl::StatusOr<std::shared_ptr<const ModelSigner>> signer =
      ModelSigner::Load(keys.files.private_key);
  absl::StatusOr<std::shared_ptr<const ModelVerifier>> verifier =
      ModelVerifier::Load(keys.files.public_key);
  EXPECT_TRUE(signer.ok() && verifier.ok());
  if (signer.ok()) keys.signer = *signer;
  if (verifier.ok()) keys.verifier = *verifier;
  return keys;
}

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_SIGNING_TESTING_H_
