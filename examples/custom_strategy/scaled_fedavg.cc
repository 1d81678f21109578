#include "scaled_fedavg.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "shoal/status.h"
#include "shoal/strategy.h"


std::unique_ptr<shoal::FitAggregator> ScaledFedAvg::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const shoal::Parameters> global) {
  // The weighted mean of the updates arrives in the finisher; scale it.
  return std::make_unique<shoal::WeightedSumAggregator>(
      std::move(global),
      [eta = eta_](const shoal::Parameters& g, const shoal::FlatLayout& layout,
                   const at::Tensor& mean) -> absl::StatusOr<shoal::Parameters> {
        return layout.Apply(g, eta * mean);
      });
}

absl::Status RegisterScaledFedAvg() {
  return shoal::RegisterStrategy(
      "scaled_fedavg",
      [](const nlohmann::json& params, const shoal::StrategyContext& context)
          -> absl::StatusOr<std::unique_ptr<shoal::Strategy>> {
        shoal::StrategyParams p("scaled_fedavg", params);
        shoal::FedAvgOptions options;
        SHOAL_RETURN_IF_ERROR(shoal::ReadFedAvgOptions(p, context, &options));
        double eta = 1.0;
        SHOAL_RETURN_IF_ERROR(p.Number("server_learning_rate", 0, 10, &eta, /*lo_open=*/true));
        SHOAL_RETURN_IF_ERROR(p.Finish());
        return std::make_unique<ScaledFedAvg>(options, eta);
      });
}
