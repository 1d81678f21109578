// ProgressReporter: the per-round progress line and the metrics history
// (metrics.json and metrics.csv) of a run, shared by `shoal server` and
// `shoal sim`.
#ifndef SHOAL_CLI_PROGRESS_REPORTER_H_
#define SHOAL_CLI_PROGRESS_REPORTER_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "experiment/experiment_config.h"
#include "server/coordinator.h"

namespace shoal {

// Accuracy returns the "accuracy" metric of an evaluation, NaN without one.
double Accuracy(const EvaluateRes& res);

// ProgressReporter prints one line per round (with the real time it took
// and the real time left at the pace so far) and rewrites the metrics
// history after every round, so a run that is stopped keeps the rounds it
// finished. Progress is timed on the real clock whatever clock the rounds
// run on: a simulation's RoundRecord::seconds are simulated, and are what
// metrics.json records. Does not own `config`. Called on the Coordinator's
// thread.
class ProgressReporter : public RoundObserver {
 public:
  // RoundExtras returns more figures of a finished round, e.g. the
  // simulated time; they are printed, saved under `extras_key` in
  // metrics.json and as extra columns in metrics.csv.
  using RoundExtras = std::function<Metrics(uint32_t round)>;

  ProgressReporter(const ExperimentConfig& config, std::string output_dir);

  void SetRoundExtras(std::string key, RoundExtras extras) {
    extras_key_ = std::move(key);
    extras_ = std::move(extras);
  }
  // AddRunInfo adds a top-level entry to metrics.json (e.g. the partition
  // summary).
  void AddRunInfo(const std::string& key, nlohmann::json value) { info_[key] = std::move(value); }

  void OnRoundStart(uint32_t round, size_t sampled) override;
  void OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                     size_t asked) override;
  void OnRoundEnd(const RoundRecord& r) override;
  // OnRestored starts the history over from a checkpoint's rounds, so a
  // resumed run's metrics hold every round exactly once.
  void OnRestored(const std::vector<RoundRecord>& history) override;

  // Write rewrites metrics.json and metrics.csv.
  absl::Status Write();

  // RoundRealSeconds returns the real time each round run since this
  // reporter was made took (from the end of the round before, sampling
  // included), in order.
  const std::vector<double>& RoundRealSeconds() const { return round_real_seconds_; }

 private:
  nlohmann::json ToJson(const RoundRecord& r) const;

  const ExperimentConfig& config_;
  const std::string dir_;
  Clock* const real_clock_ = Clock::Real();
  const absl::Time start_;
  absl::Time round_real_start_;  // when the round before ended (or the run resumed)
  std::vector<double> round_real_seconds_;
  double round_real_sum_ = 0;
  std::string extras_key_;
  RoundExtras extras_;
  nlohmann::json info_ = nlohmann::json::object();
  nlohmann::json rounds_ = nlohmann::json::array();
};

}  // namespace shoal

#endif  // SHOAL_CLI_PROGRESS_REPORTER_H_
