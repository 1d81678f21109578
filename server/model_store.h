// ModelStore: the server's versioned global models on disk (one version per
// round, with metrics and SHA-256; see common/model_dir.h for the layout),
// and the newest version kept serialized in memory for downloads.
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

namespace shoal {

// Thread-safe: the Coordinator saves while the gRPC service serves.
class ModelStore {
 public:
  // Open uses (and creates) `dir`; `model_spec` is recorded with every
  // version so a client can rebuild the architecture for inference.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::string& dir,
                                                          std::string model_spec);

  // Save writes `params` as `version` and makes it the newest.
  absl::StatusOr<ModelRecord> Save(int64_t version, const Parameters& params,
                                   const Metrics& metrics);

  // Payload returns a version ready to stream (kLatestVersion: the newest).
  // NotFound for a version never saved.
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> Payload(int64_t version) const;

  // Latest returns the newest record, if any version was saved.
  std::optional<ModelRecord> Latest() const;

  const std::string& dir() const { return dir_; }

 private:
  ModelStore(std::string dir, std::string model_spec)
      : dir_(std::move(dir)), model_spec_(std::move(model_spec)) {}

  const std::string dir_;
  const std::string model_spec_;
  mutable absl::Mutex mu_;
  std::optional<ModelRecord> latest_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ChunkedPayload> latest_payload_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_SERVER_MODEL_STORE_H_
