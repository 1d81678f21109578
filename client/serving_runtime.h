// ServingRuntime: a device's serving side (issue 16) without its transport.
// It serves from disk from the moment it opens (also when the server was
// never reached since boot), and takes the serving versions the server
// offers: each is verified before its code runs, judged by the guard on the
// device's own held-out data, and, when accepted, stored and swapped in
// while predictions go on. The agent calls Offer when the server announces
// a version; applications call serving().Predict from any thread.
#ifndef SHOAL_CLIENT_SERVING_RUNTIME_H_
#define SHOAL_CLIENT_SERVING_RUNTIME_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/data/example_source.h"
#include "client/serving_guard.h"
#include "client/serving_model.h"
#include "client/trainer.h"
#include "common/serving_store.h"

namespace shoal::client {

struct ServingRuntimeOptions {
  ServingStoreOptions store;  // the folder and the model-signing key
  GuardOptions guard;
  TaskOptions task;           // how the guard scores a version
  int64_t batch_size = 128;   // rows per forward pass of one prediction
  // Personal layers (fit.personal): makes the model a device serves from a
  // verified version's weights, e.g. LocalClient::PersonalModel. Unset:
  // the version's weights as they are. Called on the thread that opens the
  // runtime and offers it versions.
  std::function<Parameters(const Parameters& global)> personalize;
};

// OfferOutcome: what the device did with a serving version. A refusal by
// the guard is an outcome, not an error: the server hears it as a report.
struct OfferOutcome {
  int64_t version = 0;     // the version offered
  bool installed = false;  // it serves now
  std::string reason;      // the guard's sentence, or why nothing was judged
  std::optional<GuardVerdict> verdict;
};

// ServingRuntime: Offer and the accessors are called from one thread (the
// agent's); serving() is thread-safe.
class ServingRuntime {
 public:
  // Open opens the store and serves its newest version that verifies,
  // logging each newer one it had to skip (damaged on disk). With none, the
  // device serves nothing until the first offer (Predict says Unavailable).
  // `holdout` (may be null or empty) is what the guard judges on.
  static absl::StatusOr<std::unique_ptr<ServingRuntime>> Open(
      ServingRuntimeOptions options, std::shared_ptr<const ExampleSource> holdout);

  // Offer takes serving version `record.version` (manifest fields, the
  // weights `payload`, the code). Errors, with nothing changed: those of
  // ServingStore::Verify (unsigned, foreign, not newer, wrong code) checked
  // before the model is built; InvalidArgument when it does not build or
  // load. A version the guard refused once is refused again without being
  // evaluated. Without held-out data the device cannot judge and accepts
  // (the reason says so).
  absl::StatusOr<OfferOutcome> Offer(const ModelRecord& record, const std::string& payload,
                                     const ModelCode& code);

  const ServingModel& serving() const { return serving_; }
  // version is the serving version in use; 0 before the first.
  int64_t version() const;
  // skipped_at_open lists why newer versions on disk were not served.
  const std::vector<std::string>& skipped_at_open() const { return skipped_at_open_; }

 private:
  ServingRuntime(ServingRuntimeOptions options, ServingStore store, Trainer trainer,
                 std::shared_ptr<const ExampleSource> holdout)
      : options_(std::move(options)),
        store_(std::move(store)),
        trainer_(std::move(trainer)),
        holdout_(std::move(holdout)),
        serving_(options_.batch_size) {}
  // ServedBefore is the version in the store with the same weights and code
  // as `payload` and `code`, if one is held: a rollback's model, judged and
  // served here before, which the guard does not judge again.
  std::optional<int64_t> ServedBefore(const std::string& payload, const ModelCode& code) const;
  // Build makes the model of a verified version.
  absl::StatusOr<std::unique_ptr<Model>> Build(const ModelCode& code,
                                                      const Parameters& params);

  ServingRuntimeOptions options_;
  ServingStore store_;
  Trainer trainer_;
  std::shared_ptr<const ExampleSource> holdout_;
  ServingModel serving_;
  // The code and weights of the version in use, to judge the next one
  // against a model of its own (the serving one is shared with predictions).
  ModelCode current_code_;
  Parameters current_params_;
  std::map<int64_t, OfferOutcome> refused_;
  std::vector<std::string> skipped_at_open_;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_SERVING_RUNTIME_H_
