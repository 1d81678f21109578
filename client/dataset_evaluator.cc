#include "client/dataset_evaluator.h"

#include <memory>
#include <utility>

#include "common/status.h"

namespace shoal::client {

EvaluateRes ToEvaluateRes(const EvalOutcome& outcome) {
  EvaluateRes res;
  res.num_examples = outcome.num_examples;
  res.loss = outcome.loss;
  res.metrics = outcome.metrics;
  return res;
}

absl::StatusOr<DatasetEvaluator> MakeDatasetEvaluator(const ModelSpec& spec, const Task& task,
                                                      Dataset data, int64_t batch_size) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, CreateModel(spec));
  TrainerOptions options;
  options.task = task.options();
  SHOAL_ASSIGN_OR_RETURN(Trainer trainer, Trainer::Create(options));
  auto shared_model = std::shared_ptr<Model>(std::move(model));
  auto shared_trainer = std::make_shared<Trainer>(std::move(trainer));
  return DatasetEvaluator(
      [shared_model, shared_trainer, data = std::move(data),
       batch_size](const Parameters& params) -> absl::StatusOr<EvaluateRes> {
        SHOAL_RETURN_IF_ERROR(shared_model->SetParameters(params));
        SHOAL_ASSIGN_OR_RETURN(
            EvalOutcome outcome,
            shared_trainer->Evaluate(*shared_model, data, batch_size));
        return ToEvaluateRes(outcome);
      });
}

}  // namespace shoal::client
