#include "client/local_client.h"

#include "absl/time/clock.h"
#include "client/dataset_evaluator.h"
#include "common/status.h"

namespace shoal::client {

absl::StatusOr<FitRes> LocalClient::Fit(const Parameters& global,
                                        const v1::FitConfig& config, uint32_t round) {
  const absl::Time start = absl::Now();
  SHOAL_ASSIGN_OR_RETURN(FitOutcome outcome,
                         trainer_.Fit(*model_, global, train_, config, round));
  FitRes res;
  res.update = std::move(outcome.update);
  res.num_examples = outcome.num_examples;
  res.metrics[kTrainLossMetric] = outcome.train_loss;
  res.metrics["train_accuracy"] = outcome.train_accuracy;
  res.metrics[kStepsMetric] = outcome.steps;
  res.metrics["fit_seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
  return res;
}

absl::StatusOr<EvaluateRes> LocalClient::Evaluate(const Parameters& global,
                                                  const v1::EvaluateConfig& config) {
  if (holdout_.size() == 0) {
    return absl::FailedPreconditionError("this client has no held-out data");
  }
  SHOAL_RETURN_IF_ERROR(model_->SetParameters(global));
  const int64_t batch = config.batch_size() > 0 ? config.batch_size() : 128;
  SHOAL_ASSIGN_OR_RETURN(EvalOutcome outcome, trainer_.Evaluate(*model_, holdout_, batch));
  return ToEvaluateRes(outcome);
}

}  // namespace shoal::client
