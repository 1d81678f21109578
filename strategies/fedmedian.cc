#include "strategies/fedmedian.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {

at::Tensor CoordinateMedian(const at::Tensor& updates) {
  const int64_t n = updates.size(0);
  // kthvalue is 1-based. The lower and upper middle ranks coincide for an
  // odd n. Two selections are cheaper than a full sort, but each still copies
  // its input and keeps an int64 index per element: hence blocks of columns.
  const int64_t lower_rank = (n + 1) / 2;
  const int64_t upper_rank = n / 2 + 1;
  return CombineColumnBlocks(updates, [&](const at::Tensor& block) {
    at::Tensor lower = std::get<0>(at::kthvalue(block, lower_rank, /*dim=*/0));
    if (upper_rank == lower_rank) return lower;
    at::Tensor upper = std::get<0>(at::kthvalue(block, upper_rank, /*dim=*/0));
    return (lower + upper) / 2;
  });
}

std::unique_ptr<FitAggregator> FedMedian::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<PerClientAggregator>(
      std::move(global),
      [](const at::Tensor& updates, const std::vector<int64_t>& num_examples)
          -> absl::StatusOr<at::Tensor> { return CoordinateMedian(updates); });
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedMedian(
    const nlohmann::json& params, const StrategyContext& context) {
  FedAvgOptions options;
  StrategyParams p("fedmedian", params);
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedMedian>(std::move(options));
}

}  // namespace shoal
