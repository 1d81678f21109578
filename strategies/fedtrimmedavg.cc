#include "strategies/fedtrimmedavg.h"

#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {

std::unique_ptr<FitAggregator> FedTrimmedAvg::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  const double beta = trim_.beta;
  return std::make_unique<PerClientAggregator>(
      std::move(global),
      [beta](const at::Tensor& updates,
             const std::vector<int64_t>& num_examples)
          -> absl::StatusOr<at::Tensor> {
        const int64_t n = updates.size(0);
        // floor(beta * n) in double, as scipy's int(proportiontocut * nobs).
        // beta < 0.5 leaves n - 2k >= 1 values.
        const int64_t k =
            static_cast<int64_t>(std::floor(beta * static_cast<double>(n)));
        if (k == 0) return updates.mean(0);
        // A full sort rather than sum - top-k - bottom-k: subtracting a far
        // outlier back out of a float32 sum would cancel away the honest
        // values' digits. Blocks of columns, because the sort copies its
        // input and keeps an int64 index per element.
        return CombineColumnBlocks(updates, [&](const at::Tensor& block) {
          at::Tensor sorted = std::get<0>(at::sort(block, /*dim=*/0));
          return sorted.narrow(0, k, n - 2 * k).mean(0);
        });
      });
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedTrimmedAvg(
    const nlohmann::json& params, const StrategyContext& context) {
  FedAvgOptions options;
  FedTrimmedAvgOptions trim;
  StrategyParams p("fedtrimmedavg", params);
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options));
  if (absl::Status s = p.Number("beta", 0, 0.5, &trim.beta, /*lo_open=*/false,
                                /*hi_open=*/true);
      !s.ok()) {
    // Say why 0.5 is excluded: the range alone reads like an arbitrary cap.
    return absl::InvalidArgumentError(
        absl::StrCat(s.message(),
                     "; beta is the share trimmed from EACH side, so 0.5 or "
                     "more would trim every value (use fedmedian for the "
                     "limit)"));
  }
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedTrimmedAvg>(std::move(options), trim);
}

}  // namespace shoal
