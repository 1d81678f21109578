#include "strategies/fedavgm.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "strategies/params.h"

namespace shoal {

FedAvgM::FedAvgM(FedAvgMOptions options)
    : FedAvg(options.fedavg), options_(std::move(options)) {}

std::unique_ptr<FitAggregator> FedAvgM::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<WeightedSumAggregator>(
      std::move(global), [this](const Parameters& g, const FlatLayout& layout,
                                const at::Tensor& mean_update) {
        return Step(g, layout, mean_update);
      });
}

absl::StatusOr<Parameters> FedAvgM::Step(const Parameters& global,
                                         const FlatLayout& layout,
                                         const at::Tensor& mean_update) {
  if (momentum_.defined() && momentum_.numel() != layout.size()) {
    // The model changed shape mid-run: the buffer no longer lines up.
    return absl::FailedPreconditionError(absl::StrCat(
        "fedavgm: the model has ", layout.size(),
        " floating-point values but the momentum buffer has ",
        momentum_.numel(), "; the model's layout changed between rounds"));
  }
  // Computed out of place and committed last, so a failure leaves the
  // buffer as it was. v_0 = 0 makes the first round's v equal Delta.
  at::Tensor v = momentum_.defined()
                     ? momentum_ * options_.server_momentum + mean_update
                     : mean_update.clone();
  Parameters next = layout.Apply(global, v * options_.server_learning_rate);
  momentum_ = std::move(v);
  return next;
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAvgM(
    const nlohmann::json& params, const StrategyContext& context) {
  FedAvgMOptions options;
  StrategyParams p("fedavgm", params);
  SHOAL_RETURN_IF_ERROR(p.Number("server_learning_rate", 0, 1e6,
                                 &options.server_learning_rate,
                                 /*lo_open=*/true));
  SHOAL_RETURN_IF_ERROR(p.Number("server_momentum", 0, 1,
                                 &options.server_momentum, /*lo_open=*/false,
                                 /*hi_open=*/true));
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options.fedavg));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedAvgM>(options);
}

}  // namespace shoal
