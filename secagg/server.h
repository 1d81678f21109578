// SecAggServer: the server's half of a SecAgg+ session, as a pure state
// machine. It tells the caller which clients to ask in each stage and what to
// send them, takes their answers one by one (refusing anything malformed,
// replayed, out of stage or from outside the cohort without changing its
// state), and, when the caller decides the stage is over (every client
// answered or its deadline passed), closes the stage: clients that did not
// answer are dropped, and the session aborts with a clear error when too few
// remain. After the last stage it holds the sum of the surviving clients'
// inputs and nothing else about them.
//
// Stages, one class each (in server.cc):
//   CollectKeys          setup out        -> public keys in         (U1)
//   CollectShares        key lists out    -> sealed share pairs in  (U2)
//   CollectMaskedInputs  share pairs out  -> masked inputs in       (U3)
//   CollectUnmasking     survivors out    -> revealed shares in     (U4)
//   Done / Aborted
//
// Example (the caller moves the messages):
//   auto server = SecAggServer::Create(config);
//   while (!server->finished()) {
//     for (uint32_t c : server->Expected()) Send(c, server->MessageFor(c));
//     ... server->Receive(c, answer) as answers arrive, until all answered or
//     the stage's deadline passes ...
//     SHOAL_RETURN_IF_ERROR(server->Advance());
//   }
//   const std::vector<uint64_t>& sum = server->sum();
#ifndef SHOAL_SECAGG_SERVER_H_
#define SHOAL_SECAGG_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::secagg {

struct SecAggServerConfig {
  std::string session_id;  // NewSessionId(); part of every key and share
  // neighbours[i - 1] are client i's neighbours: 1-based, ascending, never i,
  // symmetric (MakeNeighbourGraph). n = neighbours.size().
  std::vector<std::vector<uint32_t>> neighbours;
  // Shares needed to rebuild a secret, and the fewest clients a sum may
  // cover; 1 <= threshold <= every client's neighbour count.
  uint32_t threshold = 0;
  uint64_t vector_length = 0;  // in [1, 2^31]
  uint64_t modulus = 0;        // in [2, 2^62]
  v1::SecAggEncoding encoding;  // passed on to the clients in the setup
  // Optional: runs run(0), ..., run(tasks - 1), possibly at once, and returns
  // when all are done. The server spreads its unmasking (a PRG expansion per
  // survivor and per (dropped client, surviving neighbour) pair) over up to
  // `parallelism` tasks; the state machine itself starts no threads.
  std::function<void(size_t tasks, const std::function<void(size_t)>& run)> parallel_for;
  size_t parallelism = 1;

  // Validate returns InvalidArgument naming what is wrong.
  absl::Status Validate() const;
};

enum class ServerStage {
  kCollectKeys,
  kCollectShares,
  kCollectMaskedInputs,
  kCollectUnmasking,
  kDone,
  kAborted
};

const char* ServerStageName(ServerStage stage);

struct ServerContext;
class ServerState;

// Not thread-safe: the caller serializes calls.
class SecAggServer {
 public:
  static absl::StatusOr<std::unique_ptr<SecAggServer>> Create(SecAggServerConfig config);
  ~SecAggServer();

  ServerStage stage() const;
  bool finished() const;
  uint32_t num_clients() const;

  // Expected lists the clients asked in the current stage (ascending).
  std::vector<uint32_t> Expected() const;
  // MessageFor builds the message that asks `client` for this stage's answer.
  // InvalidArgument for a client not in Expected().
  absl::StatusOr<v1::SecAggServerMessage> MessageFor(uint32_t client) const;

  // Receive takes `client`'s answer for the current stage. A refusal
  // (InvalidArgument, FailedPrecondition, AlreadyExists for a replay,
  // PermissionDenied) leaves the session exactly as it was.
  absl::Status Receive(uint32_t client, const v1::SecAggClientMessage& message);

  // How many of Expected() have answered, and whether all have.
  size_t num_answered() const;
  bool StageComplete() const;

  // Advance closes the current stage. Clients that did not answer are
  // dropped. Returns (and keeps, as abort_reason()) the error that aborts
  // the session when too few clients remain or a secret cannot be rebuilt.
  absl::Status Advance();
  const absl::Status& abort_reason() const { return abort_reason_; }

  // survivors()[s] is how many clients were still in after stage s closed
  // (s = 0: advertised keys, 1: shared keys, 2: sent masked inputs,
  // 3: helped unmask).
  const std::vector<size_t>& survivors() const;

  // After Done: the sum modulo the modulus of the inputs of exactly the
  // clients in summed_clients().
  const std::vector<uint64_t>& sum() const;
  std::vector<uint32_t> summed_clients() const;

 private:
  explicit SecAggServer(std::unique_ptr<ServerContext> context);
  std::unique_ptr<ServerContext> context_;
  std::unique_ptr<ServerState> state_;
  absl::Status abort_reason_;
};

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_SERVER_H_
