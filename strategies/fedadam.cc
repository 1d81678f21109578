#include "strategies/fedadam.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "strategies/params.h"

namespace shoal {

at::Tensor FedAdam::UpdateSecondMoment(const at::Tensor& v,
                                       const at::Tensor& delta_sq) const {
  const double beta_2 = fedopt_options().beta_2;
  return v * beta_2 + delta_sq * (1 - beta_2);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAdam(
    const nlohmann::json& params, const StrategyContext& context) {
  FedOptOptions options;
  StrategyParams p("fedadam", params);
  SHOAL_RETURN_IF_ERROR(
      ReadFedOptParams(&p, context, /*with_beta_2=*/true, &options));
  SHOAL_RETURN_IF_ERROR(p.Bool("bias_correction", &options.bias_correction));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedAdam>(options);
}

}  // namespace shoal
