// FedNova (Wang et al., "Tackling the Objective Inconsistency Problem in
// Heterogeneous Federated Optimization", NeurIPS 2020): clients that take
// more local steps push the average further toward their own optimum.
// FedNova normalizes each update by its client's effective number of steps
// a_i, averages the normalized updates with weights p_i = n_i / N, and
// rescales by the average effective steps tau_eff = sum_i p_i a_i:
//
//   x <- x + tau_eff * sum_i p_i * update_i / a_i
//
// With momentum rho, a_i = (tau_i - rho (1 - rho^tau_i) / (1 - rho)) / (1 - rho)
// (Wang et al., Appendix; tau_i is the client's step count, reported as the
// "steps" metric). Everything above is a weighted sum, so FedNova stays
// kWeightedSum: it folds each result in as it arrives, and secure aggregation
// can serve it.
#ifndef SHOAL_STRATEGIES_FEDNOVA_H_
#define SHOAL_STRATEGIES_FEDNOVA_H_

#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "strategies/fedavg.h"
#include "strategies/registry.h"

namespace shoal {

// EffectiveSteps is a_i for `steps` local SGD steps with `momentum`.
double EffectiveSteps(int64_t steps, double momentum);

class FedNova : public FedAvg {
 public:
  explicit FedNova(FedAvgOptions options) : FedAvg(options), momentum_(options.fit_config.momentum()) {}
  absl::string_view name() const override { return "fednova"; }
  bool AggregatesByMean() const override { return false; }
  // Its server step is linear in the updates: every compression composes.
  absl::Status CheckCompression(Compression) const override { return absl::OkStatus(); }
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

 private:
  double momentum_;
};

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedNova(const nlohmann::json& params,
                                                      const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDNOVA_H_
