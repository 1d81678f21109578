// FedMedian (Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards
// Optimal Statistical Rates", ICML): the new global model is the global model
// plus the coordinate-wise median of the clients' updates. A minority of
// arbitrary (Byzantine) updates cannot drag any coordinate outside the range
// of the honest ones, which a mean cannot promise.
#ifndef SHOAL_STRATEGIES_FEDMEDIAN_H_
#define SHOAL_STRATEGIES_FEDMEDIAN_H_

#include <ATen/core/Tensor.h>

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "strategies/fedavg.h"
#include "strategies/registry.h"
#include "strategies/strategy.h"

namespace shoal {

// CoordinateMedian returns the median of each column of `updates` ([n, D],
// n >= 1) as a [D] tensor. For an even n it is the mean of the two middle
// values, as NumPy's median and the paper's definition; at::median would
// return the lower one, biasing every coordinate downwards.
at::Tensor CoordinateMedian(const at::Tensor& updates);

// FedMedian keeps every update of the round (PerClientAggregator),
// since a median cannot be folded in as results arrive. Unweighted, as in
// the paper: num_examples is a client's own claim, and weighting by it would
// let one Byzantine client buy the median.
//
// It derives from FedAvg for ConfigureFit and ConfigureEvaluate
// (fraction_evaluate); only the aggregation differs.
class FedMedian : public FedAvg {
 public:
  explicit FedMedian(FedAvgOptions options) : FedAvg(std::move(options)) {}

  absl::string_view name() const override { return "fedmedian"; }
  // Needs each update on its own: never served by secure aggregation.
  bool AggregatesByMean() const override { return false; }
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;
};

// MakeFedMedian is the registry's factory ("fedmedian"). Parameters:
// fraction_evaluate (as FedAvg).
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedMedian(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDMEDIAN_H_
