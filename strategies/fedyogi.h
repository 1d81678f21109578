// FedYogi (Reddi et al., "Adaptive Federated Optimization", ICLR 2021,
// Algorithm 2; Yogi from Zaheer et al., NeurIPS 2018): FedOpt with Yogi's
// second moment, which moves v towards Delta_t^2 by an additive
// (1 - beta_2) * Delta_t^2 rather than multiplicatively:
//   v_t = v_{t-1} - (1 - beta_2) * Delta_t^2 * sign(v_{t-1} - Delta_t^2)
// so v cannot collapse after one large pseudo-gradient and the effective
// learning rate changes more gently than FedAdam's.
// See strategies/fedopt.h for the shared update, the initial state
// (v_{-1} = tau^2; Flower starts at 0) and the defaults (eta = 0.1,
// beta_1 = 0.9, beta_2 = 0.99, tau = 1e-9). Flower's FedYogi defaults to
// eta = 0.01 and tau = 1e-3 instead; we keep one set for the family.
#ifndef SHOAL_STRATEGIES_FEDYOGI_H_
#define SHOAL_STRATEGIES_FEDYOGI_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "strategies/fedopt.h"
#include "strategies/registry.h"

namespace shoal {

class FedYogi : public FedOpt {
 public:
  explicit FedYogi(FedOptOptions options) : FedOpt(std::move(options)) {}
  absl::string_view name() const override { return "fedyogi"; }

 protected:
  at::Tensor UpdateSecondMoment(const at::Tensor& v,
                                const at::Tensor& delta_sq) const override;
};

// MakeFedYogi reads `server_learning_rate`, `beta_1`, `beta_2`, `tau` and
// `fraction_evaluate`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedYogi(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDYOGI_H_
