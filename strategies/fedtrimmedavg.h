// FedTrimmedAvg (Yin et al. 2018, "Byzantine-Robust Distributed Learning:
// Towards Optimal Statistical Rates", ICML): the new global model is the
// global model plus the coordinate-wise beta-trimmed mean of the clients'
// updates. Dropping the extremes of each coordinate removes the values a
// Byzantine minority can push furthest, while averaging the rest keeps more
// of the honest clients' information than the median does.
#ifndef SHOAL_STRATEGIES_FEDTRIMMEDAVG_H_
#define SHOAL_STRATEGIES_FEDTRIMMEDAVG_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "strategies/fedavg.h"
#include "strategies/registry.h"
#include "strategies/strategy.h"

namespace shoal {

// FedTrimmedAvgOptions.
struct FedTrimmedAvgOptions {
  // Share of the values trimmed from EACH side of every coordinate, in
  // [0, 0.5): with n results, k = floor(beta * n) smallest and k largest are
  // dropped (as scipy.stats.trim_mean, which Flower uses). 0 is the plain
  // (unweighted) mean.
  double beta = 0.2;
};

// FedTrimmedAvg keeps every update of the round (PerClientAggregator)
// since trimming needs all values of a coordinate at once. Unweighted, as in
// the paper and in Flower: a client's num_examples is its own claim, and
// weighting by it would let a Byzantine client outweigh the trimming.
//
// It derives from FedAvg for ConfigureFit and ConfigureEvaluate
// (fraction_evaluate); only the aggregation differs.
class FedTrimmedAvg : public FedAvg {
 public:
  FedTrimmedAvg(FedAvgOptions options, FedTrimmedAvgOptions trim)
      : FedAvg(std::move(options)), trim_(trim) {}

  absl::string_view name() const override { return "fedtrimmedavg"; }
  // Needs each update on its own: never served by secure aggregation.
  bool AggregatesByMean() const override { return false; }
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

 private:
  FedTrimmedAvgOptions trim_;
};

// MakeFedTrimmedAvg is the registry's factory ("fedtrimmedavg"). Parameters:
// beta (default 0.2, in [0, 0.5)), fraction_evaluate (as FedAvg).
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedTrimmedAvg(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDTRIMMEDAVG_H_
