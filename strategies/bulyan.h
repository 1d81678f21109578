// Bulyan (El Mhamdi et al. 2018, "The Hidden Vulnerability of Distributed
// Learning in Byzantium", ICML). Krum alone picks a vector close to the
// honest cluster in L2, yet a Byzantine vector can be close overall while far
// off in a few coordinates. Bulyan first selects theta = n - 2f updates by
// applying Krum repeatedly (each choice leaves the candidate set), then, per
// coordinate, averages the beta = theta - 2f selected values closest to their
// median, which bounds every coordinate too. Needs n >= 4f + 3.
#ifndef SHOAL_STRATEGIES_BULYAN_H_
#define SHOAL_STRATEGIES_BULYAN_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "strategies/fedavg.h"
#include "strategies/registry.h"
#include "strategies/strategy.h"

namespace shoal {

// BulyanOptions.
struct BulyanOptions {
  // f: the most Byzantine clients a round tolerates. A round needs
  // n >= 4f + 3 results.
  int64_t num_malicious = 0;
};

// Bulyan keeps every update of the round (PerClientAggregator).
//
// Choices the paper leaves open: once fewer than 2f + 3 candidates remain,
// Krum's n - f - 2 neighbours would be fewer than one, so each score keeps
// at least one neighbour, as Flower does; equal scores go to the lower
// client ID (PerClientAggregator hands the rows over in client-ID order;
// Flower takes the earlier result, so its choice depends on arrival), and
// of values equally far from the median the lower one is kept. Unweighted,
// as in the paper.
//
// It derives from FedAvg for ConfigureFit and ConfigureEvaluate
// (fraction_evaluate); only the aggregation differs.
class Bulyan : public FedAvg {
 public:
  Bulyan(FedAvgOptions options, BulyanOptions bulyan)
      : FedAvg(std::move(options)), bulyan_(bulyan) {}

  absl::string_view name() const override { return "bulyan"; }
  // Needs each update on its own: never served by secure aggregation.
  bool AggregatesByMean() const override { return false; }
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

 private:
  BulyanOptions bulyan_;
};

// MakeBulyan is the registry's factory ("bulyan"). Parameters: num_malicious
// (default 0; 4 * num_malicious + 3 <= min_fit_clients), fraction_evaluate
// (as FedAvg).
absl::StatusOr<std::unique_ptr<Strategy>> MakeBulyan(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_BULYAN_H_
