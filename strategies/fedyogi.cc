#include "strategies/fedyogi.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "strategies/params.h"

namespace shoal {

at::Tensor FedYogi::UpdateSecondMoment(const at::Tensor& v,
                                       const at::Tensor& delta_sq) const {
  // v >= 0 is kept: when v > Delta^2 it drops by (1 - beta_2) * Delta^2 <
  // (1 - beta_2) * v; otherwise it grows. So sqrt(v) below is defined.
  const double beta_2 = fedopt_options().beta_2;
  return v - delta_sq * at::sign(v - delta_sq) * (1 - beta_2);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedYogi(
    const nlohmann::json& params, const StrategyContext& context) {
  FedOptOptions options;
  StrategyParams p("fedyogi", params);
  SHOAL_RETURN_IF_ERROR(
      ReadFedOptParams(&p, context, /*with_beta_2=*/true, &options));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedYogi>(options);
}

}  // namespace shoal
