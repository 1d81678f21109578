// ModelStore: the server's versioned global models on disk (one version per
// round, with metrics, SHA-256, the model's spec and code and, given a
// signing key, an Ed25519 signature over all of them; see common/model_dir.h
// for the layout), and the newest version and the model's TorchScript code
// kept serialized in memory for downloads.
#ifndef SHOAL_SERVER_MODEL_STORE_H_
#define SHOAL_SERVER_MODEL_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/chunking.h"
#include "common/model_dir.h"
#include "common/parameters.h"
#include "common/signing.h"

namespace shoal {

// StoredModel is one version ready to serve: its manifest (with the
// signature, empty if unsigned) and its bytes.
struct StoredModel {
  ModelRecord record;
  std::shared_ptr<const ChunkedPayload> payload;
};

// Thread-safe: the Coordinator saves while the gRPC service serves.
class ModelStore {
 public:
  // Open uses (and creates) `dir`. `model_spec` is the configured model: a
  // built-in name, recorded with every version, or a TorchScript file path,
  // whose bytes are read now, kept in `dir` as code-<sha256>.pt and recorded
  // by hash (the path itself is never recorded). Clients rebuild the model
  // from that for training and inference. With a `signer`, every version
  // saved is signed over its weights, spec and code (common/signing.h);
  // without one the versions are unsigned and devices that verify will
  // refuse them. Errors: NotFound or InvalidArgument naming the TorchScript
  // file; InvalidArgument for a built-in name that is not a canonical spec.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(
      const std::string& dir, std::string model_spec,
      std::shared_ptr<const ModelSigner> signer = nullptr);

  // Save writes `params` as `version` (signed, given a signer) and makes it
  // the newest. Fails, writing nothing, if signing fails.
  absl::StatusOr<ModelRecord> Save(int64_t version, const Parameters& params,
                                   const Metrics& metrics);

  // Get returns a version with its record (kLatestVersion: the newest).
  // NotFound for a version never saved. Versions older than the newest are
  // read from disk and served as recorded there (signed or not).
  absl::StatusOr<StoredModel> Get(int64_t version) const;

  // Payload is Get(version)->payload.
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> Payload(int64_t version) const;

  // DeltaPayload is `version` as a ModelDelta from version `base`
  // (common/model_delta.h), chunked for download; the newest pair asked for
  // is kept, so a round's devices share one encoding. NotFound when either
  // version is not stored; InvalidArgument for a base that is not one of the
  // 4 versions before, models that cannot be diffed (of other sizes), or a
  // delta no smaller than the model.
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> DeltaPayload(int64_t version,
                                                                     int64_t base) const;
  // Whether devices get deltas (compression.download "delta"); set before
  // the store is served.
  void set_delta_downloads(bool on) { delta_downloads_ = on; }
  bool delta_downloads() const { return delta_downloads_; }

  // Latest returns the newest record, if any version was saved.
  std::optional<ModelRecord> Latest() const;

  // Code returns the TorchScript code whose SHA-256 is `sha256` (32 raw
  // bytes), chunked for download: this run's from memory, another a stored
  // version names from disk (hash checked). NotFound when the store holds no
  // such code (a built-in model has none).
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> Code(const std::string& sha256) const;

  const std::string& dir() const { return dir_; }
  // model_spec is the canonical spec recorded with every version.
  const std::string& model_spec() const { return model_spec_; }

 private:
  ModelStore(std::string dir, std::string model_spec, std::string code_sha256_hex,
             std::shared_ptr<const ChunkedPayload> code, std::shared_ptr<const ModelSigner> signer)
      : dir_(std::move(dir)),
        model_spec_(std::move(model_spec)),
        code_sha256_hex_(std::move(code_sha256_hex)),
        code_(std::move(code)),
        signer_(std::move(signer)) {}

  const std::string dir_;
  const std::string model_spec_;                      // canonical
  const std::string code_sha256_hex_;                 // empty for a built-in
  const std::shared_ptr<const ChunkedPayload> code_;  // null for a built-in
  const std::shared_ptr<const ModelSigner> signer_;  // null: unsigned
  mutable absl::Mutex mu_;
  std::optional<ModelRecord> latest_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ChunkedPayload> latest_payload_ ABSL_GUARDED_BY(mu_);
  bool delta_downloads_ = false;
  // Held while a delta is encoded, so concurrent askers wait for one.
  mutable absl::Mutex delta_mu_;
  mutable int64_t delta_version_ ABSL_GUARDED_BY(delta_mu_) = -1;
  mutable int64_t delta_base_ ABSL_GUARDED_BY(delta_mu_) = -1;
  mutable std::shared_ptr<const ChunkedPayload> delta_ ABSL_GUARDED_BY(delta_mu_);
};

}  // namespace shoal

#endif  // SHOAL_SERVER_MODEL_STORE_H_
