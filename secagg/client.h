// SecAggClient: one client's half of a SecAgg+ session, as a pure state
// machine. Each server message goes in, the answer comes out; there are no
// sockets, threads or clocks inside, so the caller (the gRPC agent, a virtual
// client in the simulator, a test) decides how messages travel and when to
// give up.
//
// Stages, one class each (in client.cc):
//   AwaitSetup    setup (index, neighbours, threshold)  -> public keys
//   AwaitKeyList  neighbours' public keys               -> sealed share pairs
//   AwaitShares   pairs sealed for this client + input  -> masked input
//   AwaitUnmask   who survived, who dropped             -> revealed shares
//   Done / Aborted
//
// The client defends itself against a dishonest server: it refuses a
// message for another session or stage, repeated or unknown neighbours,
// duplicate keys, fewer than `threshold` live neighbours, and an unmasking
// request that names a neighbour both as survivor and as dropped (which
// would give away both the neighbour's self mask and its pairwise masks).
// Any refusal aborts the session for good: the client never answers a
// server it caught misbehaving.
//
// Example:
//   SecAggClient client;
//   SHOAL_ASSIGN_OR_RETURN(v1::SecAggClientMessage keys, client.Handle(setup));
//   ...
//   SHOAL_RETURN_IF_ERROR(client.SetInput(encoded_update));
//   SHOAL_ASSIGN_OR_RETURN(v1::SecAggClientMessage masked, client.Handle(shares));
#ifndef SHOAL_SECAGG_CLIENT_H_
#define SHOAL_SECAGG_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::secagg {

enum class ClientStage { kAwaitSetup, kAwaitKeyList, kAwaitShares, kAwaitUnmask, kDone, kAborted };

const char* ClientStageName(ClientStage stage);

struct ClientContext;
class ClientState;

// Not thread-safe: one session, one caller.
class SecAggClient {
 public:
  SecAggClient();
  ~SecAggClient();
  SecAggClient(const SecAggClient&) = delete;
  SecAggClient& operator=(const SecAggClient&) = delete;

  // Handle answers one server message. InvalidArgument / FailedPrecondition /
  // PermissionDenied (a share that fails authentication) name what was wrong
  // with the message; the session is then aborted. FailedPrecondition without
  // aborting when the message needs the input and SetInput was not called.
  absl::StatusOr<v1::SecAggClientMessage> Handle(const v1::SecAggServerMessage& message);

  // SetInput gives the vector to mask: setup().vector_length() integers below
  // setup().modulus(). Call it after setup and before the shares arrive.
  absl::Status SetInput(std::vector<uint64_t> input);

  // NeedsInput is true when the next message (the shares) needs the input
  // and it has not been given yet.
  bool NeedsInput() const;

  ClientStage stage() const;
  // The setup the server sent; null before it arrived.
  const v1::SecAggSetup* setup() const;
  const std::string& session_id() const;
  // Why the session was aborted (OK while it is not).
  const absl::Status& abort_reason() const { return abort_reason_; }

 private:
  std::unique_ptr<ClientContext> context_;
  std::unique_ptr<ClientState> state_;
  absl::Status abort_reason_;
};

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_CLIENT_H_
