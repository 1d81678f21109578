// Evaluating global parameters on a fixed dataset, the way the server scores
// every new global model on a test split.
#ifndef SHOAL_CLIENT_DATASET_EVALUATOR_H_
#define SHOAL_CLIENT_DATASET_EVALUATOR_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/types.h"

namespace shoal::client {

// ToEvaluateRes turns the Trainer's outcome into a round's EvaluateRes:
// num_examples, loss and the task's metrics.
EvaluateRes ToEvaluateRes(const EvalOutcome& outcome);

// DatasetEvaluator loads parameters into its own model and evaluates them on
// its dataset. It has the signature of the strategies' ServerEvaluator.
// Copies share the model: call one copy at a time (the Coordinator does).
using DatasetEvaluator =
    std::function<absl::StatusOr<EvaluateRes>(const Parameters&)>;

// MakeDatasetEvaluator builds a `spec` model (its initial weights are
// overwritten by every call) and returns an evaluator of `task`'s loss and
// metrics over `data` in batches of `batch_size`. Errors are CreateModel's;
// each call fails with InvalidArgument when the parameters do not fit the
// model.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(Dataset test, LoadData(data_options, Split::kTest, task));
//   SHOAL_ASSIGN_OR_RETURN(DatasetEvaluator eval, MakeDatasetEvaluator(spec, task, test));
//   strategy->set_server_evaluator(eval);
absl::StatusOr<DatasetEvaluator> MakeDatasetEvaluator(const ModelSpec& spec, const Task& task,
                                                      Dataset data, int64_t batch_size = 128);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATASET_EVALUATOR_H_
