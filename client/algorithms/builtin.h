// The client halves of the built-in strategies, one per file, each named
// like its strategy (strategies/<name>.cc) and registered under that name in
// client/client_algorithm_registry.cc. Their wire names and params are in
// common/client_algorithms.h.
#ifndef SHOAL_CLIENT_ALGORITHMS_BUILTIN_H_
#define SHOAL_CLIENT_ALGORITHMS_BUILTIN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "client/client_algorithm_registry.h"

namespace shoal::client {

// FedProx (Li et al. 2020): adds mu/2 * ||w - w_global||^2 over the
// trainable tensors to the local objective.
absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeFedProxClient(ClientAlgorithmParams& params);

// q-FedAvg (Li et al. 2020): reports the loss of the global model on the
// training data before training.
absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeQFedAvgClient(ClientAlgorithmParams& params);

// SCAFFOLD (Karimireddy et al. 2020, option II): control variates.
absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeScaffoldClient(ClientAlgorithmParams& params);

// Differential privacy with client-side clipping (McMahan et al. 2018).
absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeDifferentialPrivacyClient(
    ClientAlgorithmParams& params);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_ALGORITHMS_BUILTIN_H_
