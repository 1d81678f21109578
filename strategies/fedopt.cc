#include "strategies/fedopt.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace shoal {

FedOpt::FedOpt(FedOptOptions options)
    : FedAvg(options.fedavg), options_(std::move(options)) {}

std::unique_ptr<FitAggregator> FedOpt::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<WeightedSumAggregator>(
      std::move(global), [this](const Parameters& g, const FlatLayout& layout,
                                const at::Tensor& mean_update) {
        return Step(g, layout, mean_update);
      });
}

absl::StatusOr<Parameters> FedOpt::Step(const Parameters& global,
                                        const FlatLayout& layout,
                                        const at::Tensor& mean_update) {
  if (m_.defined() && m_.numel() != layout.size()) {
    // The model changed shape mid-run: m and v no longer line up.
    return absl::FailedPreconditionError(absl::StrCat(
        name(), ": the model has ", layout.size(),
        " floating-point values but the optimizer state has ", m_.numel(),
        "; the model's layout changed between rounds"));
  }
  const double tau = options_.tau;
  const at::Tensor m_prev = m_.defined() ? m_ : at::zeros_like(mean_update);
  const at::Tensor v_prev =
      v_.defined() ? v_ : at::full_like(mean_update, tau * tau);
  // Out of place, committed last: a failure leaves m and v as they were.
  at::Tensor m = m_prev * options_.beta_1 + mean_update * (1 - options_.beta_1);
  at::Tensor v = UpdateSecondMoment(v_prev, mean_update * mean_update);
  const at::Tensor step = m * options_.server_learning_rate / (v.sqrt() + tau);
  Parameters next = layout.Apply(global, step);
  m_ = std::move(m);
  v_ = std::move(v);
  return next;
}

absl::Status ReadFedOptParams(StrategyParams* p, const StrategyContext& context,
                              bool with_beta_2, FedOptOptions* options) {
  SHOAL_RETURN_IF_ERROR(p->Number("server_learning_rate", 0, 1e6,
                                  &options->server_learning_rate,
                                  /*lo_open=*/true));
  SHOAL_RETURN_IF_ERROR(p->Number("beta_1", 0, 1, &options->beta_1,
                                  /*lo_open=*/false, /*hi_open=*/true));
  if (with_beta_2) {
    SHOAL_RETURN_IF_ERROR(p->Number("beta_2", 0, 1, &options->beta_2,
                                    /*lo_open=*/false, /*hi_open=*/true));
  }
  SHOAL_RETURN_IF_ERROR(
      p->Number("tau", 0, 1e6, &options->tau, /*lo_open=*/true));
  return ReadFedAvgOptions(*p, context, &options->fedavg);
}

}  // namespace shoal
