// Model poisoning: a client that sends a corrupted update instead of the one
// it trained, so that researchers can measure how a strategy copes with
// Byzantine clients (docs/strategies.md, "Robustness to poisoned clients").
// Not part of the edge client: the robustness bench and its test apply it
// to the results of in-process clients (bench/robustness.cc).
#ifndef SHOAL_BENCH_ATTACK_H_
#define SHOAL_BENCH_ATTACK_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/types.h"

namespace shoal::bench {

enum class AttackMode {
  kNone,      // the honest update
  kSignFlip,  // update <- -scale * update
  kNoise,     // update <- Gaussian noise N(0, scale^2), the update's shapes
};

// ParseAttackMode accepts "none", "sign_flip" and "noise"; anything else is
// InvalidArgument naming the value and the choices.
absl::StatusOr<AttackMode> ParseAttackMode(absl::string_view name);
std::string AttackModeName(AttackMode mode);

// DefaultAttackScale is the scale a mode uses unless told otherwise:
// sign_flip 10 (the update pushed ten times as hard the wrong way); noise 1,
// 25 to 50 times the spread of the 2NN's initial weights, which costs FedAvg
// about 34 points of Fashion-MNIST accuracy with 2 of 11 clients poisoning
// (docs/benchmarks.md; 3 drives it to chance); none 1 (unused).
double DefaultAttackScale(AttackMode mode);

// AttackOptions. Example:
//   AttackOptions attack;
//   attack.mode = AttackMode::kSignFlip;   // scale 10 by default
struct AttackOptions {
  AttackMode mode = AttackMode::kNone;
  // sign_flip: the factor the negated update is multiplied by; noise: the
  // standard deviation. Finite and > 0.
  double scale = 10;
  // noise: the generator of round r is seeded from (seed, r), so a run can
  // be repeated exactly; give each poisoned client its own seed.
  uint64_t seed = 0;

  // Validate returns InvalidArgument when `scale` is not finite and > 0.
  absl::Status Validate() const;
};

// ParseAttackOptions builds options from a mode name and an optional scale
// (absent: DefaultAttackScale of the mode). InvalidArgument naming the bad
// mode or scale.
absl::StatusOr<AttackOptions> ParseAttackOptions(absl::string_view mode,
                                                 std::optional<double> scale,
                                                 uint64_t seed);

// ApplyAttack replaces `res->update` with the poisoned update of `round`.
// num_examples and metrics are left as the honest client reported them: the
// attacker claims an honest size. InvalidArgument for invalid options or an
// update holding a non-floating-point tensor.
absl::Status ApplyAttack(const AttackOptions& options, uint32_t round,
                         FitRes* res);

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_ATTACK_H_
