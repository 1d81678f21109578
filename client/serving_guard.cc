#include "client/serving_guard.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace shoal::client {

std::string GuardMetric(const Task& task) {
  return task.options().kind == TaskKind::kRegression ? "rmse" : "accuracy";
}

absl::StatusOr<GuardVerdict> GuardServing(Trainer& trainer, const ExampleSource& holdout,
                                          Model& candidate, Model* current,
                                          const GuardOptions& options) {
  if (holdout.size() == 0) {
    return absl::FailedPreconditionError(
        "the device holds no held-out examples to judge a new serving version on");
  }
  GuardVerdict v;
  v.metric = GuardMetric(trainer.task());
  const bool higher_is_better = v.metric == "accuracy";
  auto value = [&](const EvalOutcome& e) -> absl::StatusOr<double> {
    auto it = e.metrics.find(v.metric);
    if (it == e.metrics.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the held-out data gives no ", v.metric, " (constant targets?) to judge a new serving "
          "version by"));
    }
    return MetricAsDouble(it->second);
  };
  SHOAL_ASSIGN_OR_RETURN(v.candidate_eval,
                         trainer.Evaluate(candidate, holdout, options.batch_size));
  SHOAL_ASSIGN_OR_RETURN(v.candidate, value(v.candidate_eval));
  if (current == nullptr) {
    v.accept = true;
    v.reason = absl::StrFormat("%s %.4g on %d held-out examples; nothing served before", v.metric,
                               v.candidate, v.candidate_eval.num_examples);
    return v;
  }
  SHOAL_ASSIGN_OR_RETURN(v.current_eval, trainer.Evaluate(*current, holdout, options.batch_size));
  SHOAL_ASSIGN_OR_RETURN(v.current, value(v.current_eval));
  const double worse_by = higher_is_better ? v.current - v.candidate : v.candidate - v.current;
  v.accept = worse_by <= options.margin;
  v.reason = absl::StrFormat(
      "%s %.4g against %.4g served now on %d held-out examples: %s by %.4g, %s the margin %.4g",
      v.metric, v.candidate, v.current, v.candidate_eval.num_examples,
      worse_by > 0 ? "worse" : "better or equal", worse_by > 0 ? worse_by : -worse_by,
      v.accept ? "within" : "beyond", options.margin);
  return v;
}

}  // namespace shoal::client
