// The vocabulary of a round, shared by the Coordinator, strategies and every
// ClientProxy implementation (gRPC-connected or in-process).
#ifndef SHOAL_COMMON_TYPES_H_
#define SHOAL_COMMON_TYPES_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// Well-known metrics shared by strategies and the client library. The
// client halves of strategies are named in common/client_algorithms.h.
//
// kStepsMetric (FitRes.metrics, integer): optimizer steps the client took,
// which FedNova normalizes by.
inline constexpr char kStepsMetric[] = "steps";
// kStoppedEarlyMetric (FitRes.metrics, integer 1): the device's time budget
// ended its training before the configured epochs did; `steps` and
// num_examples count what it trained. kBatchSizeMetric (integer): the batch
// size the device trained with, when its memory budget made it lower than
// the config's.
inline constexpr char kStoppedEarlyMetric[] = "stopped_early";
inline constexpr char kBatchSizeMetric[] = "batch_size";
// kTrainLossMetric (FitRes.metrics, number): mean local training loss.
inline constexpr char kTrainLossMetric[] = "train_loss";
// kInitialLossMetric (FitRes.metrics, number): the mean loss of the global
// model on the client's training data before it trains (q-FedAvg's client
// half reports it; the strategy weighs clients by it).
inline constexpr char kInitialLossMetric[] = "initial_loss";
// kDpBelowClipMetric (FitRes.metrics, integer): from client-side DP
// clipping, 1 when the update was already within the clipping norm, else 0
// (adaptive clipping estimates a quantile of the norms from these bits).
inline constexpr char kDpBelowClipMetric[] = "dp_below_clip";

// FitIns tells one client to train on the global model.
struct FitIns {
  uint32_t round = 0;
  int64_t model_version = 0;
  // The global model; shared by every client of the round, never mutated.
  std::shared_ptr<const Parameters> parameters;
  v1::FitConfig config;
  // Auxiliary tensors the strategy sends with the model (SCAFFOLD's server
  // control variate); null for most strategies. Shared, never mutated.
  std::shared_ptr<const Parameters> aux;
  // Set in a securely aggregated round: the share pairs sealed for this
  // client (the SecAgg+ masked-input stage). The client then answers with
  // FitRes.secagg, its masked update, instead of the update itself.
  std::shared_ptr<const v1::SecAggServerMessage> secagg;
};

// FitRes is one client's answer: an update (local weights minus the global
// weights it started from) and the examples it trained on.
struct FitRes {
  Parameters update;
  int64_t num_examples = 0;
  Metrics metrics;  // e.g. "train_loss", "train_accuracy"
  // Auxiliary tensors returned with the update; laid out like FitIns.aux
  // (the Coordinator refuses any other layout) and empty when no aux was sent.
  Parameters aux;
  // In a securely aggregated round (FitIns.secagg set): the masked input.
  // `update` is then empty and num_examples 0: both travel masked.
  std::optional<v1::SecAggClientMessage> secagg;
  // When the round compresses uploads (FitConfig.compression): the update
  // as the client uploads it (its `aux` left empty). `update` then holds
  // what the server decodes from it, bit for bit. Shared, never mutated.
  std::shared_ptr<const v1::UpdateProto> compressed;
  // The bytes the result took on the way to the server, as its transport
  // counted them (0 when unknown); summed per round (RoundRecord).
  int64_t upload_bytes = 0;
};

// DeclaredExamples: how many examples a client said it holds when it joined
// (JoinRequest): what it trains on and what it evaluates on; 0 = not
// declared. A claim like num_examples itself, so it bounds a client's later
// reports (the Coordinator caps them at it) but cannot prove them.
struct DeclaredExamples {
  int64_t train = 0;
  int64_t evaluate = 0;
};

// AddExampleCounts returns a + b for counts a, b >= 0, saturating at
// INT64_MAX: counts come from clients, and summing two large ones must not
// overflow (undefined behaviour for int64_t).
//
// Example: AddExampleCounts(INT64_MAX, 1) == INT64_MAX.
inline int64_t AddExampleCounts(int64_t a, int64_t b) {
  return b > std::numeric_limits<int64_t>::max() - a
             ? std::numeric_limits<int64_t>::max()
             : a + b;
}

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

// DeclinedError is how a client's "not now" travels through the round: a
// device whose may-train check said no (on battery, metered link) declines
// its fit task, and the round counts it among RoundRecord::declined rather
// than its failures. Unavailable, "declined: REASON", marked by a payload.
inline constexpr char kDeclinedPayload[] = "type.shoal.dev/declined";
inline absl::Status DeclinedError(absl::string_view reason) {
  absl::Status status(absl::StatusCode::kUnavailable, absl::StrCat("declined: ", reason));
  status.SetPayload(kDeclinedPayload, absl::Cord(reason));
  return status;
}
inline bool IsDeclined(const absl::Status& status) {
  return status.GetPayload(kDeclinedPayload).has_value();
}
// DeclinedReason is the reason a DeclinedError carries.
inline std::string DeclinedReason(const absl::Status& status) {
  auto reason = status.GetPayload(kDeclinedPayload);
  return reason ? std::string(*reason) : std::string(status.message());
}

}  // namespace shoal

#endif  // SHOAL_COMMON_TYPES_H_
