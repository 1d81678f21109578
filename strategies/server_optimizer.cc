#include "strategies/server_optimizer.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace shoal {

std::unique_ptr<FitAggregator> ServerOptimizer::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<WeightedSumAggregator>(
      std::move(global),
      [this](const Parameters& g, const FlatLayout& layout,
             const at::Tensor& mean_update) -> absl::StatusOr<Parameters> {
        const int64_t state = StateSize();
        if (state >= 0 && state != layout.size()) {
          // The model changed shape mid-run: the state no longer lines up.
          return absl::FailedPreconditionError(absl::StrCat(
              name(), ": the model has ", layout.size(),
              " floating-point values but the optimizer state has ", state,
              "; the model's layout changed between rounds"));
        }
        return layout.Apply(g, Step(mean_update));
      });
}

}  // namespace shoal
