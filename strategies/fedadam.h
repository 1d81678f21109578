// FedAdam (Reddi et al., "Adaptive Federated Optimization", ICLR 2021,
// Algorithm 2): FedOpt with Adam's second moment, an exponential moving
// average of squared pseudo-gradients:
//   v_t = beta_2 * v_{t-1} + (1 - beta_2) * Delta_t^2
// Without bias correction by default (as in Algorithm 2): step t is
// (1 - beta_1^t) / sqrt(1 - beta_2^t) times bias-corrected Adam's (1 at
// t = 1 with the defaults, peaking near 2.1 around t = 13, then back to 1).
// `bias_correction` applies Adam's correction, as Flower's FedAdam does
// (see strategies/fedopt.h for how the two count t).
// See strategies/fedopt.h for the shared update, the initial state and the
// defaults (eta = 0.1, beta_1 = 0.9, beta_2 = 0.99, tau = 1e-9; Flower's).
#ifndef SHOAL_STRATEGIES_FEDADAM_H_
#define SHOAL_STRATEGIES_FEDADAM_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "strategies/fedopt.h"
#include "strategies/registry.h"

namespace shoal {

class FedAdam : public FedOpt {
 public:
  explicit FedAdam(FedOptOptions options) : FedOpt(std::move(options)) {}
  absl::string_view name() const override { return "fedadam"; }

 protected:
  at::Tensor UpdateSecondMoment(const at::Tensor& v,
                                const at::Tensor& delta_sq) const override;
};

// MakeFedAdam reads `server_learning_rate`, `beta_1`, `beta_2`, `tau`,
// `bias_correction` (false) and FedAvg's parameters.
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAdam(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDADAM_H_
