// Rollout: how a new serving version reaches the fleet (issue 16,
// docs/lifecycle.md). A promoted version goes first to a canary fraction of
// the devices; the others keep being offered the version served before.
// Once enough canary devices have reported, their verdicts decide:
//   - the rollout completes (every device is offered the new version) when
//     few enough canaries refused it and their guard metric, new against
//     old on their own data, is on average no worse than the margin;
//   - otherwise it reverts by itself: the catalog rolls back (the old
//     weights under a new, higher number) and every device is offered that.
// A canary that gathers too few reports by its deadline reverts too: an
// unjudged version does not reach the fleet. A rollback asked for by hand
// goes to every device at once, as does the first version ever served.
//
// With RolloutOptions::state_file the stage, the canary's reports and its
// start are kept on disk, so a canary survives a server restart; a missing
// or damaged state file, or one about another version, is ignored (the
// newest version then goes to every device, as without one).
//
// Which devices are canaries is a hash of (client ID, version), so it is
// the same on every poll and across server restarts, and a different slice
// of the fleet for each version.
#ifndef SHOAL_SERVER_ROLLOUT_H_
#define SHOAL_SERVER_ROLLOUT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/coordinator.h"
#include "server/serving_catalog.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

struct RolloutOptions {
  // The fraction of devices a new version goes to first, in [0, 1]. 0 (or
  // 1): no canary stage, every device is offered it at once.
  double canary_fraction = 0.1;
  // Canary reports needed before deciding (at least 1).
  int64_t min_canary_reports = 3;
  // The largest fraction of canary reports that may refuse the version.
  double max_canary_refusals = 0.0;
  // How much worse, on average, the canaries' guard metric may be for the
  // new version than for the old one (accuracy points as a fraction; RMSE
  // for regression).
  double margin = 0.01;
  // Without enough reports by then, the canary reverts.
  absl::Duration canary_deadline = absl::Hours(1);
  Clock* clock = Clock::Real();
  // Where the rollout's state is kept (written atomically at every change),
  // so a canary in progress survives a server restart; empty: not kept.
  std::string state_file;
};

enum class RolloutStage { kNone, kCanary, kComplete, kReverted };
const char* RolloutStageName(RolloutStage stage);

struct RolloutStatus {
  int64_t version = 0;         // the version being rolled out (0: none yet)
  int64_t previous = 0;        // what non-canary devices are offered meanwhile
  RolloutStage stage = RolloutStage::kNone;
  int64_t canary_reports = 0;
  int64_t canary_refusals = 0;
  double mean_change = 0;      // the canaries' metric change, new - old, signed so that > 0 is better
  std::string reason;          // why it completed or reverted
};

// Rollout is thread-safe. It does not own the catalog.
class Rollout {
 public:
  Rollout(RolloutOptions options, ServingCatalog* catalog);

  // Promote promotes through the catalog (ServingCatalog::Promote) and
  // starts the new version's canary.
  absl::StatusOr<ModelRecord> Promote(const std::string& run, const std::string& run_models_dir,
                                      int64_t version = kLatestVersion);
  // Rollback rolls back through the catalog; the result goes to every
  // device at once.
  absl::StatusOr<ModelRecord> Rollback();

  // OfferFor is the serving version to offer device `client_id` now.
  std::optional<v1::ModelVersion> OfferFor(const std::string& client_id);
  // Report takes a device's ServingReport; a canary's may decide the
  // rollout.
  void Report(const std::string& client_id, const v1::ServingReport& report);
  // IsCanary tells whether `client_id` is in `version`'s canary.
  bool IsCanary(const std::string& client_id, int64_t version) const;

  RolloutStatus status() const;

 private:
  // Decide completes or reverts a canary with enough reports, or past its
  // deadline.
  void Decide() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Start(int64_t version, int64_t previous, bool canary) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Save writes the state to options_.state_file; Restore reads it back,
  // false when there is none that fits the catalog.
  void Save() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Restore(int64_t newest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RolloutOptions options_;
  ServingCatalog* const catalog_;
  mutable absl::Mutex mu_;
  RolloutStatus status_ ABSL_GUARDED_BY(mu_);
  absl::Time started_ ABSL_GUARDED_BY(mu_);
  double change_sum_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, bool> reported_ ABSL_GUARDED_BY(mu_);  // canary -> refused
};

// AutoPromoter promotes a run's final model by itself when it beats the
// serving version on the server's evaluation by `margin` (or nothing is
// served yet). It watches the rounds (RoundObserver) and decides at the end
// of round `last_round`, before devices hear the run is over, so devices
// still connected are offered the new version before they leave. It
// compares the versions' recorded "test_accuracy" (higher is better) or,
// without one, "test_rmse" (lower is better); a run whose final model has
// neither is not promoted. A run that reaches its target accuracy
// (`target_accuracy`, as CoordinatorOptions has it) ends at that round, and
// it is promoted there too; a run that a signal or its strategy (a spent
// privacy budget) stops early is not promoted automatically.
class AutoPromoter : public RoundObserver {
 public:
  AutoPromoter(Rollout* rollout, const ServingCatalog* catalog, std::string run,
               std::string run_models_dir, uint32_t last_round, double margin,
               double target_accuracy = 0);
  void OnRoundEnd(const RoundRecord& record) override;
  // decision says what was decided, once it was ("" before).
  const std::string& decision() const { return decision_; }

 private:
  Rollout* const rollout_;
  const ServingCatalog* const catalog_;
  const std::string run_, models_;
  const uint32_t last_round_;
  const double margin_;
  const double target_accuracy_;
  std::string decision_;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_ROLLOUT_H_
