// FedAvg (McMahan et al. 2017): the new global model is the global model plus
// the num_examples-weighted mean of the clients' updates.
#ifndef SHOAL_STRATEGIES_FEDAVG_H_
#define SHOAL_STRATEGIES_FEDAVG_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "strategies/aggregate.h"
#include "strategies/params.h"
#include "strategies/registry.h"
#include "strategies/strategy.h"

namespace shoal {

// FedAvgOptions.
struct FedAvgOptions {
  // The fit config sent to every sampled client.
  v1::FitConfig fit_config;
  // Share of live clients asked each round to evaluate the new global model
  // on their held-out data (federated evaluation), in [0, 1]. 0 (default):
  // none; the server's own evaluation is usually enough.
  double fraction_evaluate = 0;
  // When fraction_evaluate > 0, at least this many clients evaluate (all of
  // them when fewer are live). 2, as in Flower: one client's held-out data
  // is a poor estimate of the model's quality.
  int64_t min_evaluate_clients = 2;
  // Batch size clients evaluate with.
  uint32_t evaluate_batch_size = 128;
};

// FedAvg folds each result into a running weighted sum as it arrives, so the
// server holds one model-sized accumulator however many clients report.
//
// Example:
//   FedAvg fedavg(options);
//   auto agg = fedavg.BeginAggregateFit(round, global);
//   agg->Accept("a", res_a); agg->Accept("b", res_b);
//   absl::StatusOr<Parameters> next = agg->Finish({});
class FedAvg : public Strategy {
 public:
  explicit FedAvg(FedAvgOptions options) : options_(std::move(options)) {}

  absl::string_view name() const override { return "fedavg"; }
  std::vector<FitInstruction> ConfigureFit(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& sampled_clients) override;
  // BeginAggregateFit folds results into their weighted mean update and
  // hands it to ApplyMeanUpdate.
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

  // ApplyMeanUpdate turns the round's weighted mean update (flat, float64)
  // into the new global model: FedAvg adds it; server-side optimizers
  // (FedAvgM, FedAdam, ...) take their step with it.
  virtual absl::StatusOr<Parameters> ApplyMeanUpdate(const Parameters& global,
                                                     const FlatLayout& layout,
                                                     const at::Tensor& mean_update);
  // FedAvg and the strategies built on it aggregate by the mean update,
  // which ApplyMeanUpdate receives; those that fold otherwise (FedNova,
  // q-FedAvg, SCAFFOLD, and the per-client median, trimmed mean, Krum,
  // Bulyan) override this to say no.
  bool AggregatesByMean() const override { return true; }

  const FedAvgOptions& options() const { return options_; }

  // ConfigureEvaluate asks EvaluateSampleSize(options, n) of the n live
  // clients, the same ones for the same round.
  std::vector<EvaluateInstruction> ConfigureEvaluate(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& live_clients) override;

 private:
  FedAvgOptions options_;
};

// EvaluateSampleSize is how many of `live` clients federated evaluation
// asks: none when fraction_evaluate is 0, else
// max(floor(fraction_evaluate * live), min_evaluate_clients), at most
// `live`. The same rule as Flower's FedAvg.num_evaluation_clients (int()
// truncates), except that Flower asks nobody when fewer than the minimum
// are available, where this asks them all.
//
// Example: fraction 0.05, minimum 2: 40 live -> 2, 20 live -> 2, 1 live -> 1.
size_t EvaluateSampleSize(const FedAvgOptions& options, size_t live);

// ReadFedAvgOptions starts `options` from the experiment's fit config and
// reads FedAvg's own parameters, `fraction_evaluate` and
// `min_evaluate_clients`. Strategies built on
// FedAvg call it, then read their own parameters from the same `params`.
absl::Status ReadFedAvgOptions(StrategyParams& params, const StrategyContext& context,
                               FedAvgOptions* options);

// MakeFedAvg is FedAvg's registry factory: parameters `fraction_evaluate`
// and `min_evaluate_clients`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAvg(const nlohmann::json& params,
                                                     const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_FEDAVG_H_
