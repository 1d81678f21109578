// Secure aggregation, server side: a fuzzed v1::SecAggClientMessage into the
// SecAggServer state machine (secagg/server.h) at any stage of a small valid
// session, in place of one client's honest answer.
//
// Properties: nothing crashes; a refused message leaves the session exactly
// as it was (the honest answer is then accepted, and the session ends with
// the exact sum of the inputs); while no deviating message was accepted,
// every honest answer is accepted.
//
// Input: byte 0 picks the stage (0 keys, 1 shares, 2 masked input,
// 3 unmasking), byte 1 the client, byte 2 bit 0 the mode (0: the rest
// replaces the honest answer; 1: the rest is merged into it, protobuf
// MergeFromString, which keeps the valid parts and the crypto intact); the
// rest is the serialized message.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "fuzz/secagg_session.h"

namespace shoal::fuzz {
namespace {

// Seeds: for each stage, each mode, an honest answer (mode 0) or an empty
// merge / a small change (mode 1).
std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  SecAggSession session;
  std::vector<std::string> honest(4);
  (void)session.Run([](uint32_t, int, secagg::SecAggClient&, v1::SecAggServerMessage&) {},
                    [&](uint32_t u, int stage, const v1::SecAggClientMessage& reply) {
                      if (u == 2 && stage < 4) honest[stage] = reply.SerializeAsString();
                      return true;
                    });
  for (int stage = 0; stage < 4; ++stage) {
    seeds.push_back(std::string{static_cast<char>(stage), 1, 0} + honest[stage]);
    seeds.push_back(std::string{static_cast<char>(stage), 1, 1});
  }
  v1::SecAggClientMessage wrong_index;
  wrong_index.set_client_index(3);
  seeds.push_back(std::string{0, 1, 1} + wrong_index.SerializeAsString());
  return seeds;
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  if (size < 3) return 0;
  const int target_stage = data[0] % 4;
  const uint32_t victim = 1 + data[1] % kSecAggClients;
  const bool merge = data[2] & 1;
  const std::string bytes(reinterpret_cast<const char*>(data) + 3, size - 3);

  SecAggSession session;
  secagg::SecAggServer& server = session.server();
  bool deviated = false;  // a message other than the honest one was accepted
  auto deliver = [&](uint32_t u, int stage, const v1::SecAggClientMessage& honest) {
    if (stage != target_stage || u != victim) {
      const absl::Status status = server.Receive(u, honest);
      if (!deviated) Check(status.ok(), "an honest answer was refused");
      return false;
    }
    v1::SecAggClientMessage message;
    if (merge) message = honest;
    if (!(merge ? message.MergeFromString(bytes) : message.ParseFromString(bytes))) {
      return true;  // not a message at all: the transport would have refused it
    }
    if (server.Receive(u, message).ok()) {
      if (message.SerializeAsString() != honest.SerializeAsString()) deviated = true;
      return false;
    }
    if (!deviated) {
      Check(server.Receive(u, honest).ok(),
            "a refused message changed the session: the honest answer is refused after it");
    }
    return false;
  };
  const absl::Status status = session.Run(
      [](uint32_t, int, secagg::SecAggClient&, v1::SecAggServerMessage&) {}, deliver);
  if (!deviated) {
    Check(status.ok() && server.stage() == secagg::ServerStage::kDone,
          "a session of honest answers did not complete");
    Check(server.summed_clients().size() == kSecAggClients, "an honest client was dropped");
    Check(server.sum() == session.PlainSum(), "the sum of honest answers is wrong");
  }
  return 0;
}
