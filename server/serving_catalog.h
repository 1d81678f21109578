// ServingCatalog: the federation's serving versions on the server (issue 16,
// docs/lifecycle.md). Promoting a run's training version makes the next
// serving version: the same weights and code, signed as a serving version
// (common/signing.h, "shoal-serving-v1") with the run and training version
// it came from, kept in a ServingStore (common/serving_store.h), the layout
// devices keep too. A rollback makes the next serving version from the
// weights of the version served before the current one; serving versions
// only ever rise, so a device can refuse anything not newer than what it
// holds.
//
// Which versions a rollback walks back through is the lineage: promotions
// push, a rollback pops the current one and serves the one below again
// (under a new number). Promote A, promote B, rollback (A again, as 3),
// rollback again: refused, nothing is below A. The lineage is kept in
// DIR/lineage.json (format 1), written before the version it names, so a
// crash in between leaves an entry that Open drops.
#ifndef SHOAL_SERVER_SERVING_CATALOG_H_
#define SHOAL_SERVER_SERVING_CATALOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/chunking.h"
#include "common/model_dir.h"
#include "common/serving_store.h"
#include "common/signing.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

struct ServingCatalogOptions {
  std::string dir;  // the serving store's folder; created when missing
  // The server's model-signing key pair: it signs serving versions and
  // checks the training versions it promotes.
  std::shared_ptr<const ModelSigner> signer;
  std::shared_ptr<const ModelVerifier> verifier;
  int keep = 20;  // serving versions kept besides the newest
};

// ServingCatalog is thread-safe.
class ServingCatalog {
 public:
  // Open reads the lineage and the store. InvalidArgument for missing keys;
  // DataLoss, naming the file, for a lineage that does not parse.
  static absl::StatusOr<std::unique_ptr<ServingCatalog>> Open(ServingCatalogOptions options);

  // Promote makes training version `version` (kLatestVersion: the newest) of
  // run `run`, whose model store is `run_models_dir`, the next serving
  // version, and returns its record. NotFound naming the run and version
  // when it does not exist; PermissionDenied when it does not verify with
  // the server's key; InvalidArgument for a malformed run ID.
  absl::StatusOr<ModelRecord> Promote(const std::string& run, const std::string& run_models_dir,
                                      int64_t version = kLatestVersion);

  // Rollback serves the version below the current one in the lineage again,
  // as the next serving version, and returns its record. FailedPrecondition
  // when there is nothing below, or that version is no longer kept.
  absl::StatusOr<ModelRecord> Rollback();

  // Current is the newest serving version, if any.
  std::optional<ModelRecord> Current() const;
  // Lineage lists the serving versions a rollback would walk back through,
  // oldest first; the last is the current one.
  std::vector<int64_t> Lineage() const;
  // Load reads serving version `version` (kLatestVersion: the newest),
  // verified (ReadModelPayload then gives the bytes devices download).
  absl::StatusOr<LoadedModelVersion> Load(int64_t version = kLatestVersion) const;

  // Payload returns serving version `version`'s weights as devices download
  // them (the newest is kept in memory); NotFound for a version not held.
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> Payload(int64_t version) const;
  // Code returns the TorchScript code with SHA-256 `sha256` (32 raw bytes)
  // that a serving version runs; NotFound when none does.
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> Code(const std::string& sha256) const;
  // Offer describes the newest serving version for a device's task
  // (ModelVersion with its origin); nullopt when there is none.
  std::optional<v1::ModelVersion> Offer() const;
  // OfferOf describes serving version `version`; NotFound when not kept.
  absl::StatusOr<v1::ModelVersion> OfferOf(int64_t version) const;

  // Listen calls `changed` (from the thread that promoted or rolled back,
  // after the change, with no lock of the catalog held) whenever the newest
  // serving version changes, until Unlisten(returned id).
  int Listen(std::function<void()> changed) const;
  void Unlisten(int id) const;
  // NotifyChanged calls the listeners: what devices are offered changed
  // without a new version (a rollout completed).
  void NotifyChanged() const;

  const std::string& dir() const { return options_.dir; }

 private:
  mutable absl::Mutex listeners_mu_;
  mutable std::map<int, std::function<void()>> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  mutable int next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 0;
  ServingCatalog(ServingCatalogOptions options, ServingStore store)
      : options_(std::move(options)), store_(std::move(store)) {}
  // Add signs `record` (its version, spec, code, origin set) over
  // `payload`, records it in the lineage (`lineage`, then written), and
  // stores it.
  absl::StatusOr<ModelRecord> Add(ModelRecord record, const std::string& payload,
                                  const ModelCode& code, std::vector<int64_t> lineage)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteLineage(const std::vector<int64_t>& lineage) const;
  absl::StatusOr<ModelRecord> PromoteLoaded(const std::string& run,
                                            const LoadedModelVersion& trained,
                                            const std::string& payload);
  absl::StatusOr<ModelRecord> RollbackLocked();
  int64_t NextVersion() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ServingCatalogOptions options_;
  mutable absl::Mutex mu_;
  ServingStore store_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> lineage_ ABSL_GUARDED_BY(mu_);
  // Described versions (their offer and bytes), read once each: the newest
  // and those a rollout offers. Cleared of versions no longer kept by Add.
  struct Described {
    v1::ModelVersion offer;
    std::shared_ptr<const ChunkedPayload> payload;
  };
  mutable std::map<int64_t, Described> described_ ABSL_GUARDED_BY(mu_);
  int64_t newest_ ABSL_GUARDED_BY(mu_) = 0;  // 0: none verifies
  // Describe reads and verifies version `version` into described_.
  absl::StatusOr<const Described*> Describe(int64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Refresh finds the newest version that verifies.
  absl::Status Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace shoal

#endif  // SHOAL_SERVER_SERVING_CATALOG_H_
