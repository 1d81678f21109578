#include "client/local_client.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/dataset_evaluator.h"
#include "common/status.h"

namespace shoal::client {

namespace {

// ConfigFlag reads a boolean from the fit config's extra values; absent is
// false.
absl::StatusOr<bool> ConfigFlag(const v1::FitConfig& config, const char* key) {
  auto it = config.extra().find(key);
  if (it == config.extra().end()) return false;
  if (it->second.kind_case() != v1::ConfigValue::kBoolValue) {
    return absl::InvalidArgumentError(
        absl::StrCat("fit config '", key, "' must be a boolean"));
  }
  return it->second.bool_value();
}

// ClipNorm reads the client-side clipping norm; 0 when there is none.
absl::StatusOr<double> ClipNorm(const v1::FitConfig& config) {
  auto it = config.extra().find(kDpClipNormKey);
  if (it == config.extra().end()) return 0.0;
  const double c = it->second.kind_case() == v1::ConfigValue::kDoubleValue
                       ? it->second.double_value()
                       : std::numeric_limits<double>::quiet_NaN();
  if (!(c > 0) || !std::isfinite(c)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fit config '", kDpClipNormKey, "' must be a finite number > 0"));
  }
  return c;
}

// Combine returns sa * a + sb * b over the floating-point tensors of `a` and
// `b` (laid out alike, as a's dtypes); integer tensors become zeros, since no
// control variate applies to them.
Parameters Combine(double sa, const Parameters& a, double sb, const Parameters& b) {
  Parameters out;
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor& t = a.tensor(i);
    out.Add(a.name(i), at::isFloatingType(t.scalar_type())
                           ? (sa * t + sb * b.tensor(i).to(t.scalar_type())).contiguous()
                           : at::zeros_like(t));
  }
  return out;
}

}  // namespace

absl::StatusOr<FitRes> LocalClient::Fit(const Parameters& global,
                                        const v1::FitConfig& config, uint32_t round,
                                        const Parameters* aux) {
  const absl::Time start = absl::Now();
  FitExtras extras;
  SHOAL_ASSIGN_OR_RETURN(extras.initial_loss, ConfigFlag(config, kReportInitialLossKey));
  SHOAL_ASSIGN_OR_RETURN(const bool scaffold, ConfigFlag(config, kScaffoldKey));
  Parameters correction;
  if (scaffold) {
    if (aux == nullptr) {
      return absl::InvalidArgumentError(
          "SCAFFOLD round without the server control variate (no auxiliary tensors)");
    }
    SHOAL_RETURN_IF_ERROR(Annotate(global.CheckCompatible(*aux), "server control variate"));
    if (control_.empty() || !global.CheckCompatible(control_).ok()) {
      control_ = Combine(0, global, 0, global);  // zero: first round, or a new model
    }
    correction = Combine(1, *aux, -1, control_);  // c - c_i
    extras.gradient_correction = &correction;
  }
  SHOAL_ASSIGN_OR_RETURN(FitOutcome outcome,
                         trainer_.Fit(*model_, global, train_, config, round, extras));
  FitRes res;
  SHOAL_ASSIGN_OR_RETURN(const double clip_norm, ClipNorm(config));
  if (clip_norm > 0) {
    // Clipped here, before the update leaves the device: the server never
    // sees more than clip_norm of any client.
    const double norm = outcome.update.L2Norm();
    res.metrics[kDpBelowClipMetric] = int64_t{norm <= clip_norm};
    if (norm > clip_norm) outcome.update = outcome.update.Scaled(clip_norm / norm);
  }
  if (scaffold) {
    // c_i+ - c_i = -c - (y - x) / (K lr): the update is y - x.
    const double scale = 1.0 / (static_cast<double>(outcome.steps) * config.learning_rate());
    Parameters delta = Combine(-scale, outcome.update, -1, *aux);
    control_ = Combine(1, control_, 1, delta);
    res.aux = std::move(delta);
  }
  res.update = std::move(outcome.update);
  res.num_examples = outcome.num_examples;
  res.metrics[kTrainLossMetric] = outcome.train_loss;
  for (const auto& [name, value] : outcome.train_metrics) res.metrics["train_" + name] = value;
  res.metrics[kStepsMetric] = outcome.steps;
  if (extras.initial_loss) res.metrics[kInitialLossMetric] = outcome.initial_loss;
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
