// SecAggSession: a small, valid SecAgg+ session (a server and its honest
// clients in one process) that the secure-aggregation fuzz targets drive
// stage by stage, swapping one honest message for a fuzzed one.
#ifndef SHOAL_FUZZ_SECAGG_SESSION_H_
#define SHOAL_FUZZ_SECAGG_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "secagg/client.h"
#include "secagg/server.h"

namespace shoal::fuzz {

// Four clients, everyone each other's neighbour, threshold 2: a session
// survives any one client's dropping out at any stage, so a refused message
// still leads to a sum the fuzzer can check.
inline constexpr uint32_t kSecAggClients = 4;
inline constexpr uint32_t kSecAggThreshold = 2;
inline constexpr uint64_t kSecAggLength = 5;
inline constexpr uint64_t kSecAggModulus = uint64_t{1} << 40;
// Fixed, so a seed's session ID still matches in the next run.
inline constexpr char kSecAggSessionId[] = "fuzz-session";

class SecAggSession {
 public:
  SecAggSession();

  secagg::SecAggServer& server() { return *server_; }
  secagg::SecAggClient& client(uint32_t u) { return *clients_[u]; }
  const std::vector<uint64_t>& input(uint32_t u) const { return inputs_[u]; }

  // Hooks let a target replace what one client receives or sends.
  //   to_client(u, stage, message): may change the server's message to u.
  //   from_client(u, stage, reply): may change u's reply; return false to
  //     drop it (u then drops out).
  // `stage` is the server stage index (0: keys ... 3: unmasking).
  using ToClient = std::function<void(uint32_t, int, secagg::SecAggClient&,
                                      v1::SecAggServerMessage&)>;
  using FromClient = std::function<bool(uint32_t, int, const v1::SecAggClientMessage& honest)>;

  // Run drives the session to its end. For every message the server sends,
  // `to_client` may swap it and the client answers; a client whose Handle
  // fails drops out. `from_client` then decides what the server receives:
  // it gets the honest reply and returns false when it delivered (or
  // dropped) the reply itself; true means "deliver the honest reply".
  // Returns the status of the last Advance.
  absl::Status Run(const ToClient& to_client, const FromClient& from_client);

  // PlainSum is the sum of the inputs of server().summed_clients().
  std::vector<uint64_t> PlainSum() const;

 private:
  std::unique_ptr<secagg::SecAggServer> server_;
  std::vector<std::unique_ptr<secagg::SecAggClient>> clients_;  // 1-based
  std::vector<std::vector<uint64_t>> inputs_;                   // 1-based
};

}  // namespace shoal::fuzz

#endif  // SHOAL_FUZZ_SECAGG_SESSION_H_
