// shoal/task.h: what a model learns, its loss and its metrics.
//
// TaskOptions (plain struct, copyable) chooses the kind: classification
// (cross-entropy; accuracy), binary / multi-label (BCE with logits; label
// accuracy) or regression (MSE or L1; MAE, RMSE, R²). A Task built from it
// computes losses and metric sums on tensors; it is immutable and may be
// shared between threads. A TorchScript model with a `loss(outputs,
// targets)` method trains on that loss instead.
//
// Example:
//   shoal::TaskOptions options;
//   options.kind = shoal::TaskKind::kRegression;
//   shoal::Task task(options);
#ifndef SHOAL_TASK_H_
#define SHOAL_TASK_H_

#include "client/task.h"

namespace shoal {

using client::ParseTaskKind;    // "classification", ...; InvalidArgument
using client::RegressionLoss;
using client::Task;
using client::TaskKind;
using client::TaskKindName;
using client::TaskOptions;

}  // namespace shoal

#endif  // SHOAL_TASK_H_
