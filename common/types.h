// The vocabulary of a round, shared by the Coordinator, strategies and every
// ClientProxy implementation (gRPC-connected or in-process).
#ifndef SHOAL_COMMON_TYPES_H_
#define SHOAL_COMMON_TYPES_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// Well-known keys shared by strategies and the client library.
//
// kProximalMuKey (FitConfig.extra, number >= 0): FedProx's mu; the client
// adds mu/2 * ||w - w_global||^2 to its local loss.
inline constexpr char kProximalMuKey[] = "proximal_mu";
// kStepsMetric (FitRes.metrics, integer): optimizer steps the client took,
// which FedNova normalizes by.
inline constexpr char kStepsMetric[] = "steps";
// kTrainLossMetric (FitRes.metrics, number): mean local training loss.
inline constexpr char kTrainLossMetric[] = "train_loss";

// FitIns tells one client to train on the global model.
struct FitIns {
  uint32_t round = 0;
  int64_t model_version = 0;
  // The global model; shared by every client of the round, never mutated.
  std::shared_ptr<const Parameters> parameters;
  v1::FitConfig config;
};

// FitRes is one client's answer: an update (local weights minus the global
// weights it started from) and the examples it trained on.
struct FitRes {
  Parameters update;
  int64_t num_examples = 0;
  Metrics metrics;  // e.g. "train_loss", "train_accuracy"
};

struct EvaluateIns {
  uint32_t round = 0;
  int64_t model_version = 0;
  std::shared_ptr<const Parameters> parameters;
  v1::EvaluateConfig config;
};

struct EvaluateRes {
  int64_t num_examples = 0;
  double loss = 0;
  Metrics metrics;  // e.g. "accuracy"
};

// ClientFailure is a client that did not deliver a usable result, and why.
struct ClientFailure {
  std::string client_id;
  absl::Status status;
};

}  // namespace shoal

#endif  // SHOAL_COMMON_TYPES_H_
