#include "strategies/fedprox.h"

#include <nlohmann/json.hpp>

#include "common/client_algorithms.h"
#include "common/status.h"
#include "common/types.h"
#include "strategies/params.h"

namespace shoal {
namespace {

FedAvgOptions WithMu(FedProxOptions options) {
  // The client half, client/algorithms/fedprox.cc, adds the proximal term.
  (*AddClientAlgorithm(&options.fedavg.fit_config, kFedProxAlgorithm)->mutable_params())
      [kProximalMuParam].set_double_value(options.proximal_mu);
  return options.fedavg;
}

}  // namespace

FedProx::FedProx(FedProxOptions options) : FedAvg(WithMu(std::move(options))) {}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedProx(const nlohmann::json& params,
                                                      const StrategyContext& context) {
  FedProxOptions options;
  StrategyParams p("fedprox", params);
  SHOAL_RETURN_IF_ERROR(p.Number("proximal_mu", 0, 1e6, &options.proximal_mu));
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options.fedavg));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedProx>(options);
}

}  // namespace shoal
