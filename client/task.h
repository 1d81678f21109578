// Task: what a model is trained to do, which decides its loss and its
// metrics. Classification (cross-entropy; accuracy), binary and multi-label
// classification (binary cross-entropy on logits; accuracy over labels) and
// regression (MSE or L1; MAE, RMSE and R²). A TorchScript model that defines
// a `loss(outputs, targets)` method brings its own loss (see Model::Loss);
// the task's metrics still apply.
#ifndef SHOAL_CLIENT_TASK_H_
#define SHOAL_CLIENT_TASK_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace shoal::client {

enum class TaskKind {
  kClassification,  // targets int64 [N] in [0, C); outputs logits [N, C]
  kMultiLabel,      // targets float [N] or [N, K] in {0, 1}; outputs logits alike
  kRegression,      // targets float [N] or [N, K]; outputs alike
};

enum class RegressionLoss { kMse, kL1 };

// TaskOptions. Defaults: classification.
struct TaskOptions {
  TaskKind kind = TaskKind::kClassification;
  RegressionLoss regression_loss = RegressionLoss::kMse;  // kRegression only
};

// ParseTaskKind accepts "classification", "multilabel" (also "binary") and
// "regression"; ParseRegressionLoss "mse" and "l1". InvalidArgument listing
// the choices otherwise.
absl::StatusOr<TaskKind> ParseTaskKind(const std::string& text);
absl::StatusOr<RegressionLoss> ParseRegressionLoss(const std::string& text);
std::string TaskKindName(TaskKind kind);

// TargetsAreClassIndices tells whether `kind` wants int64 class indices
// (classification) rather than float values.
bool TargetsAreClassIndices(TaskKind kind);

// Task holds the loss and the metrics of one TaskOptions. Copyable, cheap,
// and thread-compatible (no state besides its options).
class Task {
 public:
  explicit Task(TaskOptions options = {}) : options_(options) {}

  const TaskOptions& options() const { return options_; }

  // CheckTargets says whether `targets` (the whole dataset's) suit this task
  // and a model whose outputs for a batch look like `outputs`: dtype, shape
  // and range (class indices below the number of logits, multi-label targets
  // 0 or 1). InvalidArgument naming what is wrong; checked once, up front,
  // so a mistake is not an opaque kernel error deep in a loss.
  absl::Status CheckTargets(const at::Tensor& targets, const at::Tensor& outputs) const;

  // Loss is the task's loss of `outputs` against `targets`, averaged over
  // the batch (`sum` = false) or summed (`sum` = true). Throws c10::Error
  // like any LibTorch call; the Trainer catches it.
  at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets, bool sum = false) const;

  // MetricNames lists the metrics MetricSums reports, e.g. {"accuracy"}.
  std::vector<std::string> MetricNames() const;

  // MetricSums accumulates a task's metrics over batches on the outputs'
  // device (no per-batch synchronization) and reports them once.
  class MetricSums {
   public:
    MetricSums(const Task& task, const at::TensorOptions& options);
    // Add folds in one batch (outputs detached by the caller).
    void Add(const at::Tensor& outputs, const at::Tensor& targets);
    // Result returns the metrics over the `n` examples added, e.g.
    // {"accuracy": 0.87} or {"mae": ..., "rmse": ..., "r2": ...}.
    Metrics Result(int64_t n) const;
    // Pooled returns the per-example means that, averaged over clients by
    // their example counts, give the exact federated value of the metrics
    // that are not means (common/metrics.h, DeriveFromPooled): for
    // regression "pooled.mse", "pooled.target_mean", "pooled.target_sq_mean";
    // nothing for the other tasks, whose metrics are means.
    Metrics Pooled() const;

   private:
    TaskKind kind_;
    at::Tensor sums_;  // float64 [4] (see task.cc for the layout)
  };

 private:
  TaskOptions options_;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_TASK_H_
