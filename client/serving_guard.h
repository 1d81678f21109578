// The device-side guard (issue 16): before a new serving version takes over
// on a device, the device evaluates it and the version it serves on its own
// held-out data, and keeps the current one when the new one is worse by more
// than a configured margin. The verdict and both sets of metrics go back to
// the server, whose canary rollout compares them across devices.
#ifndef SHOAL_CLIENT_SERVING_GUARD_H_
#define SHOAL_CLIENT_SERVING_GUARD_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/data/example_source.h"
#include "client/model.h"
#include "client/trainer.h"

namespace shoal::client {

struct GuardOptions {
  // How much worse the candidate may be on the guard metric before it is
  // refused, in that metric's units: accuracy points as a fraction (0.01 =
  // one point) for classification and multi-label; RMSE in the targets'
  // units for regression. 0 refuses any loss.
  double margin = 0.01;
  int64_t batch_size = 128;
};

struct GuardVerdict {
  bool accept = false;
  std::string metric;          // "accuracy" or "rmse"
  double candidate = 0;        // the candidate's value of `metric`
  double current = 0;          // the current version's (0 without one)
  EvalOutcome candidate_eval;  // the candidate's loss and metrics
  EvalOutcome current_eval;    // the current version's (empty without one)
  std::string reason;          // why, in words, for logs and the server
};

// GuardMetric is the metric the guard compares for `task`: "accuracy"
// (higher is better) or, for regression, "rmse" (lower is better).
std::string GuardMetric(const Task& task);

// GuardServing evaluates `candidate` and `current` (null: the device serves
// nothing yet, and any candidate that evaluates is accepted) on `holdout`
// with `trainer`'s task, and accepts the candidate unless its guard metric
// is worse than the current's by more than `options.margin`. The models are
// put in eval mode and must not be in use elsewhere. FailedPrecondition
// with no held-out examples (the device cannot judge: the caller decides
// whether to accept unjudged); the Trainer's errors otherwise (e.g. a
// candidate that does not take this device's inputs).
absl::StatusOr<GuardVerdict> GuardServing(Trainer& trainer, const ExampleSource& holdout,
                                          Model& candidate, Model* current,
                                          const GuardOptions& options = {});

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_SERVING_GUARD_H_
