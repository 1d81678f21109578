#include "strategies/fedadagrad.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "strategies/params.h"

namespace shoal {

at::Tensor FedAdagrad::UpdateSecondMoment(const at::Tensor& v,
                                          const at::Tensor& delta_sq) const {
  return v + delta_sq;
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAdagrad(
    const nlohmann::json& params, const StrategyContext& context) {
  FedOptOptions options;
  StrategyParams p("fedadagrad", params);
  SHOAL_RETURN_IF_ERROR(
      ReadFedOptParams(&p, context, /*with_beta_2=*/false, &options));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedAdagrad>(options);
}

}  // namespace shoal
