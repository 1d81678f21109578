// The SecAgg+ neighbour graph (Bell et al. 2020, "Secure Single-Server
// Aggregation with (Poly)Logarithmic Overhead"): instead of every client
// sharing keys with every other (classic SecAgg, quadratic cost), each client
// pairs masks with and secret-shares its keys among only k neighbours, with a
// threshold of t shares to rebuild a secret. This file picks (k, t) for a
// cohort and builds the graph.
//
// Choosing (k, t). With n clients, a dropout rate delta and an adversary
// (corrupt-client) rate gamma, the targets for the whole cohort are split
// evenly over its clients (a union bound):
//   eps_s = 2^-sigma / n  (privacy),   eps_c = 2^-eta / n  (correctness).
// For a degree k:
//  - Security. C ~ Binomial(k, gamma) counts a client's corrupt neighbours.
//    The server sees the honest neighbours' shares it asks for and all the
//    corrupt ones', and it must not get t shares of both of one honest
//    client's secrets (its mask key and its self-mask seed); honest
//    neighbours reveal one of the two, so that needs (k - C) + 2C >= 2t.
//    Hence P[C >= 2t - k] <= eps_s, and t_min(k) is the smallest t in
//    [1, k] meeting it (gamma = 0 gives t_min = floor(k/2) + 1).
//  - Correctness. H ~ Binomial(k, 1 - delta - gamma) counts a client's
//    honest neighbours that survive the round; the server needs t of them:
//    P[H < t] <= eps_c, and t_max(k) is the largest t meeting it.
//  - Isolation. (delta + gamma)^k <= eps_s: no client loses all its
//    neighbours to dropouts and corruption. This is necessary for the graph
//    of honest survivors to stay connected, not sufficient.
// ChooseGraphParameters takes the smallest even k in [2, n - 2] with
// t_min(k) <= t_max(k) and isolation, and t = t_min(k): the security target
// is met exactly and all remaining slack goes to tolerating dropouts.
// Small cohorts have no such k; they get the complete graph, k = n - 1,
// with t from security against a fixed count c = ceil(gamma * n) (capped at
// k) of corrupt clients: t = min(k, floor((k + c) / 2) + 1). For the complete
// graph correctness is not backed by a bound: the round simply needs t
// survivors among each client's neighbours.
// The binomial tails are computed exactly in log space (no normal
// approximation), so probabilities of 2^-60 and degrees up to 10^5 are
// accurate.
//
// Building the graph. A randomly labelled Harary graph, as in Bell et al.:
// the clients sit on a cycle in a uniformly random order, and each is joined
// to its k/2 successors and k/2 predecessors. The order comes only from a
// 32-byte seed, so every party holding it builds the same graph; the server
// draws a fresh seed per round with RandomBytes(kKeySize).
//
// All functions are thread-safe (no shared state).
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(GraphParameters params,
//                          ChooseGraphParameters(n, GraphOptions{}));
//   SHOAL_ASSIGN_OR_RETURN(Bytes seed, RandomBytes(kKeySize));
//   SHOAL_ASSIGN_OR_RETURN(std::vector<std::vector<uint32_t>> neighbours,
//                          MakeNeighbourGraph(n, params.degree, seed));
//   // neighbours[i - 1] are client i's neighbours.
#ifndef SHOAL_SECAGG_GRAPH_H_
#define SHOAL_SECAGG_GRAPH_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "secagg/crypto.h"

namespace shoal::secagg {

// GraphOptions: what the cohort must withstand.
struct GraphOptions {
  // Fraction of clients expected to drop out during a round, in [0, 1).
  double dropout_rate = 0.1;
  // Fraction of clients that may collude with the server, in [0, 1).
  double adversary_rate = 0.0;
  // sigma: privacy fails with probability <= 2^-sigma over the whole cohort;
  // in [1, 256].
  int security_bits = 40;
  // eta: unmasking fails with probability <= 2^-eta over the whole cohort;
  // in [1, 256].
  int correctness_bits = 20;

  // Validate: InvalidArgument naming the field that is out of range, or both
  // rates when dropout_rate + adversary_rate >= 1 (no honest survivor left).
  absl::Status Validate() const;
};

// GraphParameters: the chosen graph.
struct GraphParameters {
  uint32_t degree = 0;     // k: neighbours per client
  uint32_t threshold = 0;  // t: shares needed to rebuild a secret, 1 <= t <= k
  bool complete = false;   // every client neighbours every other; k = n - 1
};

// ChooseGraphParameters returns (k, t) for `num_clients` clients as
// described at the top of this file. InvalidArgument for num_clients < 2 or
// options that fail Validate().
absl::StatusOr<GraphParameters> ChooseGraphParameters(
    uint32_t num_clients, const GraphOptions& options);

// MakeNeighbourGraph returns, for each client 1..n, its neighbours:
// result[i - 1] holds client i's neighbours, 1-based, ascending, never i
// itself; the relation is symmetric. `degree` is n - 1 (the complete graph,
// which does not depend on the seed) or an even number in [2, n - 1]; `seed` is
// kKeySize bytes. The same arguments always give the same graph. The result
// holds n * degree entries, so the complete graph of a large cohort (which
// ChooseGraphParameters returns when the rates leave no sparse choice) is
// quadratic in memory.
// InvalidArgument for num_clients < 2, a bad degree or a bad seed size.
absl::StatusOr<std::vector<std::vector<uint32_t>>> MakeNeighbourGraph(
    uint32_t num_clients, uint32_t degree, const Bytes& seed);

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_GRAPH_H_
