// FedAdagrad (Reddi et al., "Adaptive Federated Optimization", ICLR 2021,
// Algorithm 2): FedOpt with Adagrad's second moment, the running sum of
// squared pseudo-gradients:
//   v_t = v_{t-1} + Delta_t^2
// so each coordinate's step shrinks as its history of movement grows.
// See strategies/fedopt.h for the shared update, the initial state and the
// defaults (eta = 0.1, beta_1 = 0.9, tau = 1e-9). FedAdagrad has no beta_2,
// and refuses one. Unlike Flower's FedAdagrad (beta_1 fixed at 0), beta_1 is
// a parameter, as in the paper; set it to 0 for Flower's behaviour.
#ifndef SHOAL_STRATEGIES_FEDADAGRAD_H_
#define SHOAL_STRATEGIES_FEDADAGRAD_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "strategies/fedopt.h"
#include "strategies/registry.h"

namespace shoal {

class FedAdagrad : public FedOpt {
 public:
  explicit FedAdagrad(FedOptOptions options) : FedOpt(std::move(options)) {}
  absl::string_view name() const override { return "fedadagrad"; }

 protected:
  at::Tensor UpdateSecondMoment(const at::Tensor& v,
                                const at::Tensor& delta_sq) const override;
};

// MakeFedAdagrad reads `server_learning_rate`, `beta_1`, `tau` and
// `fraction_evaluate`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAdagrad(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDADAGRAD_H_
