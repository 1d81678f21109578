#include "strategies/server_optimizer.h"

#include <ATen/ATen.h>

#include <cmath>

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
  for (const StateSlot& slot :
       const_cast<ServerOptimizer*>(this)->StateTensors()) {
    if (slot.tensor->defined()) state.Add(slot.name, slot.tensor->clone());
  }
  return state;
}

absl::Status ServerOptimizer::LoadState(const Parameters& state) {
  if (state.empty()) return absl::OkStatus();  // saved before the first step
  std::vector<StateSlot> slots = StateTensors();
  if (state.size() != slots.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name(), ": the checkpoint holds ", state.size(), " state tensor(s), expected ",
        slots.size()));
  }
  int64_t flat_length = -1;  // of the first flat slot; the others must match
  for (size_t i = 0; i < slots.size(); ++i) {
    const at::Tensor& t = state.tensor(i);
    const bool shaped = state.name(i) == slots[i].name &&
                        t.scalar_type() == at::kDouble && t.dim() == 1;
    if (slots[i].is_count) {
      const double count = shaped && t.numel() == 1 ? t.item<double>() : -1;
      if (!(count >= 0 && std::isfinite(count))) {
        return absl::InvalidArgumentError(absl::StrCat(
            name(), ": state tensor ", i, " is '", state.name(i),
            "'; expected '", slots[i].name, "', one float64 count >= 0"));
      }
      continue;
    }
    if (flat_length < 0 && shaped) flat_length = t.numel();
    if (!shaped || t.numel() != flat_length) {
      return absl::InvalidArgumentError(absl::StrCat(
          name(), ": state tensor ", i, " is '", state.name(i), "'; expected '",
          slots[i].name, "', flat float64, as long as the others"));
    }
  }
  for (size_t i = 0; i < slots.size(); ++i)
    *slots[i].tensor = state.tensor(i).clone();
  return absl::OkStatus();
}

}  // namespace shoal
