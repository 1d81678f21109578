// ServingStore: the serving versions a device keeps on disk, so that it
// answers predictions after a restart and while the server is unreachable
// (docs/lifecycle.md). The folder has the model-directory layout
// (common/model_dir.h), holding serving versions only:
//
//   DIR/model-000003.params   serving version 3's weights
//   DIR/model-000003.json     its manifest: SHA-256s, spec, the origin
//                             ("serving": {"run", "training_version"}) and
//                             the server's serving signature over all of it
//   DIR/code-<sha256>.pt      TorchScript code, once per hash
//
// The newest version that reads and verifies is the one served; nothing
// else records which one that is, so no pointer file can disagree with the
// versions. On a device a version is installed only after the device
// accepted it (the guard, client/serving_guard.h), and only when it is
// newer than every
// version held: a rollback on the server is a new serving version with
// older weights, so an old version can never be replayed. Versions are
// verified with the model-signing key when installed and again whenever
// they are read back: one altered on disk is refused at startup as it
// would be on arrival, and the device serves the newest older one that
// verifies.
#ifndef SHOAL_COMMON_SERVING_STORE_H_
#define SHOAL_COMMON_SERVING_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_dir.h"
#include "common/signing.h"

namespace shoal {

struct ServingStoreOptions {
  std::string dir;  // created when missing
  // The model-signing public key. Required: a serving version is always
  // signed, whatever the transport.
  std::shared_ptr<const ModelVerifier> verifier;
  // Versions kept besides the newest, so a device can fall back to one when
  // the newest is damaged on disk (at least 0).
  int keep = 2;
};

// ServingStore is not thread-safe; the device runtime calls it from its
// agent thread.
class ServingStore {
 public:
  // Open checks the options and creates the folder; it reads nothing yet.
  static absl::StatusOr<ServingStore> Open(ServingStoreOptions options);

  // Verify checks what Install checks, and writes nothing: a device
  // verifies a version before it builds (runs) its model to judge it.
  absl::Status Verify(const ModelRecord& record, const std::string& payload,
                      const ModelCode& code) const;

  // Install verifies serving version `record.version` (its manifest fields:
  // origin, spec, code SHA-256 and signature; the weights are `payload`, a
  // serialized ParametersProto, and TorchScript code `code.torchscript`),
  // then stores it and removes versions beyond `keep`. Refused:
  //   PermissionDenied  no origin, unsigned, or not this key's signature
  //                     over these weights, spec, code and origin;
  //   FailedPrecondition  not newer than the newest version held;
  //   InvalidArgument   code that does not match its SHA-256.
  // Nothing is written when it is refused.
  absl::Status Install(const ModelRecord& record, const std::string& payload,
                       const ModelCode& code);

  // LoadNewest returns the newest version that reads and verifies, and in
  // `skipped` (when given) why each newer one did not; nullopt when the
  // store holds none that does.
  absl::StatusOr<std::optional<LoadedModelVersion>> LoadNewest(
      std::vector<std::string>* skipped = nullptr) const;

  // versions lists the versions held, ascending (verified or not).
  std::vector<int64_t> versions() const;

  const std::string& dir() const { return options_.dir; }

 private:
  explicit ServingStore(ServingStoreOptions options) : options_(std::move(options)) {}
  ServingStoreOptions options_;
};

}  // namespace shoal

#endif  // SHOAL_COMMON_SERVING_STORE_H_
