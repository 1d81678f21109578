#include "bench/attack.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "common/status.h"

namespace shoal::bench {

absl::StatusOr<AttackMode> ParseAttackMode(absl::string_view name) {
  if (name == "none") return AttackMode::kNone;
  if (name == "sign_flip") return AttackMode::kSignFlip;
  if (name == "noise") return AttackMode::kNoise;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown attack '", name, "' (known: none, sign_flip, noise)"));
}

std::string AttackModeName(AttackMode mode) {
  switch (mode) {
    case AttackMode::kNone:
      return "none";
    case AttackMode::kSignFlip:
      return "sign_flip";
    case AttackMode::kNoise:
      return "noise";
  }
  return "unknown";
}

double DefaultAttackScale(AttackMode mode) {
  switch (mode) {
    case AttackMode::kSignFlip:
      return 10;
    case AttackMode::kNoise:
    case AttackMode::kNone:
      return 1;
  }
  return 1;
}

absl::Status AttackOptions::Validate() const {
  if (!std::isfinite(scale) || scale <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attack scale ", scale, " is out of range: it must be finite and > 0"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AttackOptions> ParseAttackOptions(absl::string_view mode,
                                                 std::optional<double> scale,
                                                 uint64_t seed) {
  AttackOptions options;
  SHOAL_ASSIGN_OR_RETURN(options.mode, ParseAttackMode(mode));
  options.scale = scale.value_or(DefaultAttackScale(options.mode));
  options.seed = seed;
  SHOAL_RETURN_IF_ERROR(options.Validate());
  return options;
}

absl::Status ApplyAttack(const AttackOptions& options, uint32_t round,
                         FitRes* res) {
  SHOAL_RETURN_IF_ERROR(options.Validate());
  if (options.mode == AttackMode::kNone) return absl::OkStatus();
  const Parameters& honest = res->update;
  for (size_t i = 0; i < honest.size(); ++i) {
    if (!at::isFloatingType(honest.tensor(i).scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot poison tensor '", honest.name(i),
                       "': it is not floating-point"));
    }
  }
  Parameters poisoned;
  try {
    // One generator per (seed, round), drawn tensor by tensor in order: the
    // same run poisons with the same noise.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
        SplitMix64(SplitMix64(options.seed) ^ round));
    for (size_t i = 0; i < honest.size(); ++i) {
      const at::Tensor& t = honest.tensor(i);
      at::Tensor bad;
      if (options.mode == AttackMode::kSignFlip) {
        bad = t * -options.scale;
      } else {
        bad = at::normal(0.0, options.scale, t.sizes(), gen,
                         t.options().device(at::kCPU))
                  .to(t.device());
      }
      poisoned.Add(honest.name(i), std::move(bad));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("poisoning the update: ", e.what_without_backtrace()));
  }
  res->update = std::move(poisoned);
  return absl::OkStatus();
}

}  // namespace shoal::bench
