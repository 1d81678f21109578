// RunSecureRound: the fit stage of a securely aggregated round. It runs one
// SecAgg+ session (secagg/server.h) over the round's cohort through their
// ClientProxy objects, one stage after another, and returns the weighted
// mean update of the clients that survived it: the server never sees an
// individual update.
//
// Deadlines: the setup, key-sharing and unmasking stages each get
// `stage_timeout`; the masked-input stage, in which clients train, runs until
// the round's deadline. A client that misses a stage's deadline, fails, or
// sends a message the protocol refuses is dropped from the session and
// reported as a failure naming the stage; the session survives as long as
// enough clients remain (see secagg/graph.h for how many).
#ifndef SHOAL_SERVER_SECURE_ROUND_H_
#define SHOAL_SERVER_SECURE_ROUND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/types.h"
#include "secagg/graph.h"
#include "secagg/update_codec.h"
#include "server/client_proxy.h"
#include "strategies/strategy.h"

namespace shoal {

// SecureAggregationOptions: the "secure_aggregation" section of a run.
struct SecureAggregationOptions {
  bool enabled = false;
  // Clip, quantization bits, modulus and the num_examples cap.
  secagg::UpdateEncoding encoding;
  // Expected dropout and adversary rates: they set the neighbour graph's
  // degree and threshold.
  secagg::GraphOptions graph;
  absl::Duration stage_timeout = absl::Seconds(60);

  // Validate returns InvalidArgument naming the first bad option.
  absl::Status Validate() const;
};

// SecureRoundResult: what the session produced.
struct SecureRoundResult {
  absl::Status status;  // OK, or why the session aborted (nothing learned)
  // When OK: update = the num_examples-weighted mean update of the summed
  // clients, num_examples = their total (capped) weight.
  FitRes aggregate;
  size_t summed = 0;  // clients in the sum
  std::vector<ClientFailure> failures;
  // secagg_degree, secagg_threshold and the clients left after each stage:
  // secagg_keys, secagg_shares, secagg_masked, secagg_unmasked.
  Metrics metrics;
};

// StageObserver hears about each stage as it closes: its name, how many
// clients answered and how many were asked.
using StageObserver = std::function<void(const std::string& stage, size_t answered, size_t asked)>;

struct SecureCohortMember {
  std::shared_ptr<ClientProxy> proxy;
  FitIns fit;  // the round's fit task for this client (no aux)
};

// RunSecureRound runs the session over `cohort` (at least 2 clients) and
// decodes the sum against the layout of `global`. Stage deadlines are read
// from, and waited for on, `clock` (the Coordinator's; not owned).
SecureRoundResult RunSecureRound(uint32_t round, const Parameters& global,
                                 const std::vector<SecureCohortMember>& cohort,
                                 const SecureAggregationOptions& options, absl::Time fit_deadline,
                                 Clock* clock, const StageObserver& observer);

// CheckSecureAggregationSupported refuses, naming the strategy, one that
// needs individual updates.
absl::Status CheckSecureAggregationSupported(const Strategy& strategy);

}  // namespace shoal

#endif  // SHOAL_SERVER_SECURE_ROUND_H_
