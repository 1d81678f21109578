// FedProx (Li et al., "Federated Optimization in Heterogeneous Networks",
// MLSys 2020): FedAvg whose clients minimize their loss plus
// mu/2 * ||w - w_global||^2, which limits client drift on non-IID data. The
// server side is FedAvg's; the round asks the clients for the client half
// "fedprox" with param proximal_mu (client/algorithms/fedprox.cc), which
// adds the term.
#ifndef SHOAL_STRATEGIES_FEDPROX_H_
#define SHOAL_STRATEGIES_FEDPROX_H_

#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "strategies/fedavg.h"
#include "strategies/registry.h"

namespace shoal {

// FedProxOptions: FedAvg's, plus mu (>= 0; 0 is FedAvg). Default 0.01, in
// the range Li et al. found useful ({0.001, 0.01, 0.1, 1}).
struct FedProxOptions {
  FedAvgOptions fedavg;
  double proximal_mu = 0.01;
};

class FedProx : public FedAvg {
 public:
  explicit FedProx(FedProxOptions options);
  absl::string_view name() const override { return "fedprox"; }
};

// MakeFedProx reads `proximal_mu` and `fraction_evaluate`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedProx(const nlohmann::json& params,
                                                      const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDPROX_H_
