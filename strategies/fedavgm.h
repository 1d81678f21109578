// FedAvgM (Hsu, Qi and Brown, "Measuring the Effects of Non-Identical Data
// Distribution for Federated Visual Classification", arXiv:1909.06335, 2019):
// FedAvg with server-side momentum. The weighted mean of the clients'
// updates, Delta_t, is treated as a pseudo-gradient (a step direction) and
// fed to heavy-ball momentum on the server:
//   v_t = beta * v_{t-1} + Delta_t       (v_0 = 0)
//   x_t = x_{t-1} + eta * v_t
// Momentum smooths the round-to-round noise that non-IID cohorts add to
// Delta_t.
//
// Defaults: server_learning_rate eta = 1.0 and server_momentum beta = 0.9.
// Flower's FedAvgM defaults beta to 0.0, but beta = 0 with eta = 1 is exactly
// FedAvg, so a user who picks "fedavgm" without parameters would silently get
// FedAvg; 0.9 is the value Hsu et al. report working well with eta = 1.
#ifndef SHOAL_STRATEGIES_FEDAVGM_H_
#define SHOAL_STRATEGIES_FEDAVGM_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "strategies/aggregate.h"
#include "strategies/fedavg.h"
#include "strategies/registry.h"
#include "strategies/server_optimizer.h"

namespace shoal {

// FedAvgMOptions: FedAvg's (fit config, federated evaluation), plus the
// server optimizer's.
struct FedAvgMOptions {
  FedAvgOptions fedavg;
  // eta > 0.
  double server_learning_rate = 1.0;
  // beta in [0, 1); 0 turns momentum off.
  double server_momentum = 0.9;
};

// FedAvgM keeps the momentum buffer across rounds (see ServerOptimizer for
// the rules on state). Client selection and federated evaluation are
// FedAvg's.
class FedAvgM : public ServerOptimizer {
 public:
  explicit FedAvgM(FedAvgMOptions options);

  absl::string_view name() const override { return "fedavgm"; }

 private:
  int64_t StateSize() const override {
    return momentum_.defined() ? momentum_.numel() : -1;
  }
  at::Tensor Step(const at::Tensor& mean_update) override;
  std::vector<StateSlot> StateTensors() override {
    return {{"momentum", &momentum_}};
  }

  FedAvgMOptions options_;
  at::Tensor momentum_;  // float64 [layout.size()]; undefined before round 1
};

// MakeFedAvgM reads `server_learning_rate`, `server_momentum` and
// `fraction_evaluate`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAvgM(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDAVGM_H_
