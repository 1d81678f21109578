#include "strategies/fedavgm.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "strategies/params.h"

namespace shoal {

FedAvgM::FedAvgM(FedAvgMOptions options)
    : ServerOptimizer(options.fedavg), options_(std::move(options)) {}

at::Tensor FedAvgM::Step(const at::Tensor& mean_update) {
  // v_0 = 0 makes the first round's v equal Delta.
  momentum_ = momentum_.defined() ? momentum_ * options_.server_momentum + mean_update
                                  : mean_update.clone();
  return momentum_ * options_.server_learning_rate;
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
