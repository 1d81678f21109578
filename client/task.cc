#include "client/task.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::client {
namespace {

std::string Shape(const at::Tensor& t) {
  return absl::StrCat(c10::toString(t.scalar_type()), " [", absl::StrJoin(t.sizes(), ", "), "]");
}

// Aligned returns `outputs` shaped like `targets` where the two differ only
// by a trailing 1: a model with one output unit returns [N, 1] for targets
// [N].
at::Tensor Aligned(const at::Tensor& outputs, const at::Tensor& targets) {
  if (outputs.dim() == 2 && outputs.size(1) == 1 && targets.dim() == 1) return outputs.squeeze(1);
  return outputs;
}

// The layout of MetricSums::sums_, per kind:
//   classification: [correct, -, -, -]
//   multi-label:    [correct labels, labels, -, -]
//   regression:     [sum |e|, sum e^2, sum y, sum y^2] and [4] = values
constexpr int64_t kNumSums = 5;

}  // namespace

absl::StatusOr<TaskKind> ParseTaskKind(const std::string& text) {
  if (text == "classification") return TaskKind::kClassification;
  if (text == "multilabel" || text == "binary") return TaskKind::kMultiLabel;
  if (text == "regression") return TaskKind::kRegression;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown task '", text.substr(0, 64),
                   "': expected classification, binary, multilabel or regression"));
}

absl::StatusOr<RegressionLoss> ParseRegressionLoss(const std::string& text) {
  if (text == "mse") return RegressionLoss::kMse;
  if (text == "l1") return RegressionLoss::kL1;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown regression loss '", text.substr(0, 64), "': expected mse or l1"));
}

std::string TaskKindName(TaskKind kind) {
  switch (kind) {
    case TaskKind::kClassification:
      return "classification";
    case TaskKind::kMultiLabel:
      return "multilabel";
    case TaskKind::kRegression:
      return "regression";
  }
  return "unknown";
}

bool TargetsAreClassIndices(TaskKind kind) { return kind == TaskKind::kClassification; }

absl::Status Task::CheckTargets(const at::Tensor& targets, const at::Tensor& outputs) const {
  if (options_.kind == TaskKind::kClassification) {
    if (targets.dim() != 1 || targets.scalar_type() != at::kLong) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a classification task needs int64 class indices [N] as targets, got ", Shape(targets)));
    }
    if (outputs.dim() != 2 || outputs.size(1) < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a classification model must return logits [N, classes], got ", Shape(outputs)));
    }
    const int64_t lo = targets.min().item<int64_t>();
    const int64_t hi = targets.max().item<int64_t>();
    if (lo < 0 || hi >= outputs.size(1)) {
      return absl::InvalidArgumentError(absl::StrCat("labels range over [", lo, ", ", hi,
                                                     "] but the model has ", outputs.size(1),
                                                     " classes"));
    }
    return absl::OkStatus();
  }
  const char* what = options_.kind == TaskKind::kMultiLabel ? "a multi-label" : "a regression";
  if (!at::isFloatingType(targets.scalar_type()) || targets.dim() < 1 || targets.dim() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " task needs floating-point targets [N] or [N, K], got ", Shape(targets)));
  }
  const at::Tensor aligned = Aligned(outputs, targets);
  if (aligned.dim() != targets.dim() || (targets.dim() == 2 && aligned.size(1) != targets.size(1))) {
    return absl::InvalidArgumentError(absl::StrCat("the model returns ", Shape(outputs), " for ",
                                                   what, " task whose targets are ",
                                                   Shape(targets)));
  }
  if (!at::isfinite(targets).all().item<bool>()) {
    return absl::InvalidArgumentError("targets hold NaN or infinite values");
  }
  if (options_.kind == TaskKind::kMultiLabel &&
      !(targets.eq(0).logical_or(targets.eq(1))).all().item<bool>()) {
    return absl::InvalidArgumentError(
        "a multi-label (or binary) task needs targets that are 0 or 1");
  }
  return absl::OkStatus();
}

at::Tensor Task::Loss(const at::Tensor& outputs, const at::Tensor& targets, bool sum) const {
  const at::Reduction::Reduction reduction = sum ? at::Reduction::Sum : at::Reduction::Mean;
  switch (options_.kind) {
    case TaskKind::kClassification:
      return at::cross_entropy_loss(outputs, targets, /*weight=*/{}, reduction);
    case TaskKind::kMultiLabel: {
      const at::Tensor x = Aligned(outputs, targets);
      return at::binary_cross_entropy_with_logits(x, targets.to(x.scalar_type()), /*weight=*/{},
                                                  /*pos_weight=*/{}, reduction);
    }
    case TaskKind::kRegression: {
      const at::Tensor x = Aligned(outputs, targets);
      const at::Tensor y = targets.to(x.scalar_type());
      return options_.regression_loss == RegressionLoss::kL1 ? at::l1_loss(x, y, reduction)
                                                             : at::mse_loss(x, y, reduction);
    }
  }
  return at::Tensor();
}

std::vector<std::string> Task::MetricNames() const {
  if (options_.kind == TaskKind::kRegression) return {"mae", "rmse", "r2"};
  return {"accuracy"};
}

Task::MetricSums::MetricSums(const Task& task, const at::TensorOptions& options)
    : kind_(task.options().kind), sums_(at::zeros({kNumSums}, options.dtype(at::kDouble))) {}

void Task::MetricSums::Add(const at::Tensor& outputs, const at::Tensor& targets) {
  switch (kind_) {
    case TaskKind::kClassification:
      sums_.select(0, 0).add_(outputs.argmax(1).eq(targets).sum());
      return;
    case TaskKind::kMultiLabel: {
      const at::Tensor x = Aligned(outputs, targets);
      sums_.select(0, 0).add_(x.gt(0).eq(targets.gt(0.5)).sum());
      sums_.select(0, 1).add_(static_cast<double>(targets.numel()));
      return;
    }
    case TaskKind::kRegression: {
      const at::Tensor y = targets.to(at::kDouble);
      const at::Tensor e = Aligned(outputs, targets).to(at::kDouble) - y;
      sums_.select(0, 0).add_(e.abs().sum());
      sums_.select(0, 1).add_(e.square().sum());
      sums_.select(0, 2).add_(y.sum());
      sums_.select(0, 3).add_(y.square().sum());
      sums_.select(0, 4).add_(static_cast<double>(targets.numel()));
      return;
    }
  }
}

Metrics Task::MetricSums::Result(int64_t n) const {
  const at::Tensor cpu = sums_.to(at::kCPU);
  const double* s = cpu.data_ptr<double>();
  Metrics out;
  switch (kind_) {
    case TaskKind::kClassification:
      out["accuracy"] = n > 0 ? s[0] / static_cast<double>(n) : 0.0;
      break;
    case TaskKind::kMultiLabel:
      out["accuracy"] = s[1] > 0 ? s[0] / s[1] : 0.0;
      break;
    case TaskKind::kRegression: {
      // Over every output; RMSE and R² follow from the pooled means, by the
      // formula the server uses on many clients' (R² is omitted when the
      // targets are constant).
      if (s[4] <= 0) break;
      out = Pooled();
      out["mae"] = s[0] / s[4];
      DeriveFromPooled(&out);
      break;
    }
  }
  return out;
}

Metrics Task::MetricSums::Pooled() const {
  if (kind_ != TaskKind::kRegression) return {};
  const at::Tensor cpu = sums_.to(at::kCPU);
  const double* s = cpu.data_ptr<double>();
  const double m = s[4];
  if (m <= 0) return {};
  const std::string p = kPooledPrefix;
  return {{p + "mse", s[1] / m}, {p + "target_mean", s[2] / m}, {p + "target_sq_mean", s[3] / m}};
}

}  // namespace shoal::client
