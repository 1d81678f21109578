// FedOpt: the adaptive server optimizers of Reddi et al., "Adaptive
// Federated Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2. The
// weighted mean of the clients' updates, Delta_t, is a pseudo-gradient fed
// to an Adam-like step on the server:
//   m_t = beta_1 * m_{t-1} + (1 - beta_1) * Delta_t           (m_{-1} = 0)
//   v_t = per algorithm, from v_{t-1} and Delta_t^2            (v_{-1} = tau^2)
//   x_t = x_{t-1} + eta * m_t / (sqrt(v_t) + tau)
// FedAdagrad, FedAdam and FedYogi (one file each) differ only in v_t.
//
// Choices, and how they compare with the paper and with Flower
// (flwr.server.strategy.FedOpt and subclasses):
//   - No bias correction of m and v by default, as in Algorithm 2. FedAdam
//     offers it (`bias_correction`), as Flower's FedAdam now always applies
//     it: eta_t = eta * sqrt(1 - beta_2^t) / (1 - beta_1^t), with t the
//     steps taken so far, this one included (Flower uses t = round + 1, one
//     more than Kingma & Ba's count in round 1, and counts rounds that took
//     no step). Flower's FedAdagrad and FedYogi have none.
//   - v starts at tau^2: the paper asks v_{-1} >= tau^2 (Flower starts at 0).
//     That adds tau^2 to FedAdagrad's sum and tau^2 * beta_2^(t+1) to
//     FedAdam's v, and FedYogi's first sign(v - Delta^2) compares with
//     tau^2 rather than 0: negligible unless some |Delta| is near tau.
//   - Defaults: server_learning_rate eta = 0.1, beta_1 = 0.9, beta_2 = 0.99,
//     tau = 1e-9, Flower's FedAdam defaults, for all three. Flower's
//     FedAdagrad fixes beta_1 = 0 (no momentum) and its FedYogi defaults to
//     eta = 0.01, tau = 1e-3; we keep one set so the three are comparable,
//     and Algorithm 2 has momentum in all three. The tiny default tau makes
//     the first step a fixed multiple of eta * sign(Delta) per coordinate
//     whatever Delta's scale (with these defaults, 1 for FedAdam and FedYogi,
//     0.1 for FedAdagrad), so tune eta and tau together.
// All values are float64 and flat over the model's floating-point tensors
// (FlatLayout); integer tensors keep the global model's values.
#ifndef SHOAL_STRATEGIES_FEDOPT_H_
#define SHOAL_STRATEGIES_FEDOPT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "strategies/aggregate.h"
#include "strategies/fedavg.h"
#include "strategies/params.h"
#include "strategies/registry.h"
#include "strategies/server_optimizer.h"

namespace shoal {

// FedOptOptions: FedAvg's (fit config, federated evaluation), plus the
// server optimizer's. Ranges are checked by ReadFedOptParams.
struct FedOptOptions {
  FedAvgOptions fedavg;
  double server_learning_rate = 0.1;  // eta > 0
  double beta_1 = 0.9;                // [0, 1)
  double beta_2 = 0.99;               // [0, 1); unused by FedAdagrad
  double tau = 1e-9;                  // > 0: adaptivity, and v's floor
  // Adam's bias correction (FedAdam only; the other two leave it false):
  // step t (1, 2, ...) uses eta * sqrt(1 - beta_2^t) / (1 - beta_1^t), as
  // Kingma & Ba's alpha_t. Off by default: Reddi et al.'s Algorithm 2 has
  // none, and runs and checkpoints from before the option stay as they were.
  bool bias_correction = false;
};

// FedOpt is the shared base of the adaptive family: it keeps m and v across
// rounds (see ServerOptimizer for the rules on state). Client selection and
// federated evaluation are FedAvg's; subclasses supply name() and
// UpdateSecondMoment().
class FedOpt : public ServerOptimizer {
 protected:
  explicit FedOpt(FedOptOptions options);

  // UpdateSecondMoment returns v_t from v_{t-1} and Delta_t^2 (elementwise,
  // float64, same shape), without modifying its arguments.
  virtual at::Tensor UpdateSecondMoment(const at::Tensor& v,
                                        const at::Tensor& delta_sq) const = 0;

  const FedOptOptions& fedopt_options() const { return options_; }

 private:
  int64_t StateSize() const override { return m_.defined() ? m_.numel() : -1; }
  at::Tensor Step(const at::Tensor& mean_update) override;
  std::vector<StateSlot> StateTensors() override {
    std::vector<StateSlot> slots = {{"m", &m_}, {"v", &v_}};
    if (options_.bias_correction) slots.push_back({"steps", &steps_, true});
    return slots;
  }

  FedOptOptions options_;
  at::Tensor m_;  // float64 [layout.size()]; undefined before round 1
  at::Tensor v_;  // float64 [layout.size()]; undefined before round 1
  // float64 [1]: the steps taken, with bias correction only (it is t, which
  // need not be the round: a round without enough results takes no step).
  at::Tensor steps_;
};

// ReadFedOptParams reads `server_learning_rate`, `beta_1`, `tau`, FedAvg's
// parameters and, when `with_beta_2`, `beta_2` into `options`
// (whose fit config it takes from `context`). Call p->Finish() afterwards.
absl::Status ReadFedOptParams(StrategyParams* p, const StrategyContext& context,
                              bool with_beta_2, FedOptOptions* options);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDOPT_H_
