#include "strategies/server_optimizer.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace shoal {

absl::StatusOr<Parameters> ServerOptimizer::ApplyMeanUpdate(const Parameters& global,
                                                            const FlatLayout& layout,
                                                            const at::Tensor& mean_update) {
  const int64_t state = StateSize();
  if (state >= 0 && state != layout.size()) {
    // The model changed shape mid-run: the state no longer lines up.
    return absl::FailedPreconditionError(absl::StrCat(
        name(), ": the model has ", layout.size(),
        " floating-point values but the optimizer state has ", state,
        "; the model's layout changed between rounds"));
  }
  return layout.Apply(global, Step(mean_update));
}

}  // namespace shoal
