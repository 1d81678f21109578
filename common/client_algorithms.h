// The wire names of the client halves of the built-in strategies, shared by
// each strategy (which asks for its client half in the round's FitConfig)
// and the client library (which registers the half under the same name;
// client/client_algorithm_registry.h). A strategy file and its client half
// share the name: strategies/fedprox.cc and client/algorithms/fedprox.cc.
#ifndef SHOAL_COMMON_CLIENT_ALGORITHMS_H_
#define SHOAL_COMMON_CLIENT_ALGORITHMS_H_

#include "absl/strings/string_view.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// "fedprox": the client adds mu/2 * ||w - w_global||^2 to its local loss.
// Param kProximalMuParam (number >= 0; absent = 0, plain SGD).
inline constexpr char kFedProxAlgorithm[] = "fedprox";
inline constexpr char kProximalMuParam[] = "proximal_mu";

// "qfedavg": the client reports kInitialLossMetric (common/types.h), the
// mean loss of the global model on its training data before it trains.
// No params.
inline constexpr char kQFedAvgAlgorithm[] = "qfedavg";

// "scaffold": FitIns.aux holds the server control variate c (laid out like
// the model); the client corrects every gradient by c - c_i, keeps its own
// control variate c_i between rounds and returns its change in FitRes.aux.
// No params.
inline constexpr char kScaffoldAlgorithm[] = "scaffold";

// "differential_privacy": client-side clipping. The client scales its update
// down to kClipNormParam (number > 0, required) when it is longer, and
// reports kDpBelowClipMetric (common/types.h).
inline constexpr char kDifferentialPrivacyAlgorithm[] = "differential_privacy";
inline constexpr char kClipNormParam[] = "clip_norm";

// AddClientAlgorithm appends an entry named `name` with no params to
// `config`'s client algorithms and returns it, for the caller to fill in.
// The client runs the entries in order at every point of the round.
//
// Example:
//   (*AddClientAlgorithm(&config, kFedProxAlgorithm)->mutable_params())
//       [kProximalMuParam].set_double_value(0.01);
v1::ClientAlgorithmConfig* AddClientAlgorithm(v1::FitConfig* config,
                                              absl::string_view name);

// PrependClientAlgorithm is AddClientAlgorithm, but puts the entry first, so
// that its hooks run before those of the others. A wrapper strategy uses it
// to see the update before any inner algorithm does (client-side DP clips
// before SCAFFOLD estimates its control variate from the update).
v1::ClientAlgorithmConfig* PrependClientAlgorithm(v1::FitConfig* config,
                                                  absl::string_view name);

// FindClientAlgorithm returns the entry named `name`, or null when the
// config does not ask for it.
const v1::ClientAlgorithmConfig* FindClientAlgorithm(const v1::FitConfig& config,
                                                     absl::string_view name);

}  // namespace shoal

#endif  // SHOAL_COMMON_CLIENT_ALGORITHMS_H_
