#include "strategies/fedopt.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace shoal {

FedOpt::FedOpt(FedOptOptions options)
    : ServerOptimizer(options.fedavg), options_(std::move(options)) {}

at::Tensor FedOpt::Step(const at::Tensor& mean_update) {
  const double tau = options_.tau;
  const at::Tensor m_prev = m_.defined() ? m_ : at::zeros_like(mean_update);
  const at::Tensor v_prev =
      v_.defined() ? v_ : at::full_like(mean_update, tau * tau);
  m_ = m_prev * options_.beta_1 + mean_update * (1 - options_.beta_1);
  v_ = UpdateSecondMoment(v_prev, mean_update * mean_update);
  double eta = options_.server_learning_rate;
  if (options_.bias_correction) {
    const double t = (steps_.defined() ? steps_.item<double>() : 0) + 1;
    steps_ = at::full({1}, t, at::TensorOptions().dtype(at::kDouble));
    eta *= std::sqrt(1 - std::pow(options_.beta_2, t)) /
           (1 - std::pow(options_.beta_1, t));
  }
  return m_ * eta / (v_.sqrt() + tau);
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
