// Krum and Multi-Krum (Blanchard et al. 2017, "Machine Learning with
// Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS). With n
// updates of which at most f are Byzantine, each update is scored by the sum
// of its squared distances to its n - f - 2 nearest other updates; Krum
// applies the lowest-scored update, Multi-Krum the (unweighted) mean of the m
// lowest-scored ones. An honest update sits among other honest ones, so its
// nearest neighbours are close; a Byzantine one far from the honest cluster
// scores high however many examples it claims.
#ifndef SHOAL_STRATEGIES_KRUM_H_
#define SHOAL_STRATEGIES_KRUM_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "strategies/fedavg.h"
#include "strategies/registry.h"
#include "strategies/strategy.h"

namespace shoal {

// PairwiseSquaredDistances returns the float64 [n, n] matrix of squared
// Euclidean distances between the rows of `updates` ([n, D]).
at::Tensor PairwiseSquaredDistances(const at::Tensor& updates);

// KrumScores returns, for each of the r vectors whose squared distances are
// `sq_dists` ([r, r]), the sum of its squared distances to its
// `num_neighbors` (in [1, r - 1]) nearest other vectors ([r], float64).
at::Tensor KrumScores(const at::Tensor& sq_dists, int64_t num_neighbors);

// MultiKrumOptions.
struct MultiKrumOptions {
  // f: the most Byzantine clients a round tolerates. A round needs
  // n >= 2f + 3 results.
  int64_t num_malicious = 0;
  // m: how many of the lowest-scored updates are averaged, in [1, n - f].
  // 1 is Krum.
  int64_t num_selected = 1;
};

// MultiKrum keeps every update of the round (PerClientAggregator):
// scores need all pairwise distances. Equal scores go to the lower client
// ID (PerClientAggregator hands the rows over in client-ID order), so the
// outcome does not depend on network timing. Unweighted, as in the paper:
// num_examples is a client's own claim.
//
// It derives from FedAvg for ConfigureFit and ConfigureEvaluate
// (fraction_evaluate); only the aggregation differs.
class MultiKrum : public FedAvg {
 public:
  MultiKrum(FedAvgOptions options, MultiKrumOptions krum)
      : FedAvg(std::move(options)), krum_(krum) {}

  absl::string_view name() const override { return "multikrum"; }
  // Needs each update on its own: never served by secure aggregation.
  bool AggregatesByMean() const override { return false; }
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

 private:
  MultiKrumOptions krum_;
};

// Krum is Multi-Krum with m = 1: the round applies one client's update.
class Krum : public MultiKrum {
 public:
  Krum(FedAvgOptions options, int64_t num_malicious)
      : MultiKrum(std::move(options), {num_malicious, /*num_selected=*/1}) {}

  absl::string_view name() const override { return "krum"; }
};

// MakeKrum is the registry's factory ("krum"). Parameters: num_malicious
// (default 0; 2 * num_malicious + 3 <= min_fit_clients), fraction_evaluate
// (as FedAvg). num_selected is refused: that is "multikrum".
absl::StatusOr<std::unique_ptr<Strategy>> MakeKrum(
    const nlohmann::json& params, const StrategyContext& context);

// MakeMultiKrum is the registry's factory ("multikrum"). Parameters as Krum,
// plus num_selected (default 1; at most min_fit_clients - num_malicious).
absl::StatusOr<std::unique_ptr<Strategy>> MakeMultiKrum(
    const nlohmann::json& params, const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_KRUM_H_
