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

  // Hooks let a target swap what one client receives or sends; `stage` is
  // the server stage index (0 keys, 1 shares, 2 masked input, 3 unmasking).
  //   to_client(u, stage, client, message): may change the server's message
  //     to u before u handles it.
  //   from_client(u, stage, honest): sees u's reply; returns true to have it
  //     delivered to the server as is, false when the hook delivered
  //     something itself (or nothing: u then drops out).
  using ToClient = std::function<void(uint32_t, int, secagg::SecAggClient&,
                                      v1::SecAggServerMessage&)>;
  using FromClient = std::function<bool(uint32_t, int, const v1::SecAggClientMessage& honest)>;

  // Run drives the session to its end: every stage, every expected client
  // gets its message (through to_client) and answers; a client whose Handle
  // fails drops out. Returns the status of the last Advance.
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
