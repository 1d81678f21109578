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

Parameters ServerOptimizer::SaveState() const {
  Parameters state;
  for (const auto& [name, tensor] : const_cast<ServerOptimizer*>(this)->StateTensors()) {
    if (tensor->defined()) state.Add(name, tensor->clone());
  }
  return state;
}

absl::Status ServerOptimizer::LoadState(const Parameters& state) {
  if (state.empty()) return absl::OkStatus();  // saved before the first step
  std::vector<std::pair<std::string, at::Tensor*>> slots = StateTensors();
  if (state.size() != slots.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name(), ": the checkpoint holds ", state.size(), " state tensor(s), expected ",
        slots.size()));
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const at::Tensor& t = state.tensor(i);
    if (state.name(i) != slots[i].first || t.scalar_type() != at::kDouble || t.dim() != 1 ||
        t.numel() != state.tensor(0).numel()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name(), ": state tensor ", i, " is '", state.name(i),
          "'; expected '", slots[i].first, "', flat float64, as long as the others"));
    }
  }
  for (size_t i = 0; i < slots.size(); ++i) *slots[i].second = state.tensor(i).clone();
  return absl::OkStatus();
}

}  // namespace shoal
