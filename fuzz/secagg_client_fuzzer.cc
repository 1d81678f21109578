// Secure aggregation, client side: a fuzzed v1::SecAggServerMessage into the
// SecAggClient state machine (secagg/client.h) at any stage of a small valid
// session, in place of what the honest server sends one client.
//
// Properties: nothing crashes; a client that refuses a message is aborted
// for good (it answers nothing more); when it refused, the other clients
// still complete the session with the exact sum of their inputs.
//
// Input: byte 0 picks the stage (0 setup, 1 key list, 2 shares,
// 3 unmasking request), byte 1 the client, byte 2 bit 0 the mode (0: the
// rest replaces the server's message; 1: the rest is merged into it); the
// rest is the serialized message.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "fuzz/secagg_session.h"

namespace shoal::fuzz {
namespace {

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  SecAggSession session;
  std::vector<std::string> honest(4);
  (void)session.Run(
      [&](uint32_t u, int stage, secagg::SecAggClient&, v1::SecAggServerMessage& message) {
        if (u == 2 && stage < 4) honest[stage] = message.SerializeAsString();
      },
      [](uint32_t, int, const v1::SecAggClientMessage&) { return true; });
  for (int stage = 0; stage < 4; ++stage) {
    seeds.push_back(std::string{static_cast<char>(stage), 1, 0} + honest[stage]);
    seeds.push_back(std::string{static_cast<char>(stage), 1, 1});
  }
  v1::SecAggServerMessage unmask;
  unmask.mutable_unmask()->add_survivors(1);
  unmask.mutable_unmask()->add_dropped(1);
  seeds.push_back(std::string{3, 1, 1} + unmask.SerializeAsString());
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
  bool deviated = false;  // the victim got a message other than the honest one
  v1::SecAggServerMessage honest;
  auto swap = [&](uint32_t u, int stage, secagg::SecAggClient&,
                  v1::SecAggServerMessage& message) {
    if (u != victim || stage != target_stage) return;
    honest = message;
    v1::SecAggServerMessage fuzzed;
    if (merge) fuzzed = message;
    if (!(merge ? fuzzed.MergeFromString(bytes) : fuzzed.ParseFromString(bytes))) return;
    deviated = fuzzed.SerializeAsString() != message.SerializeAsString();
    message = std::move(fuzzed);
  };
  bool answered = false;  // the victim answered the swapped message
  const absl::Status status =
      session.Run(swap, [&](uint32_t u, int stage, const v1::SecAggClientMessage&) {
        if (u == victim && stage == target_stage) answered = true;
        return true;
      });

  secagg::SecAggClient& client = session.client(victim);
  if (client.stage() == secagg::ClientStage::kAborted) {
    Check(!client.abort_reason().ok(), "an aborted client has no reason");
    Check(!client.Handle(honest).ok(), "an aborted client answered again");
  }
  if (!deviated) {
    Check(status.ok() && session.server().stage() == secagg::ServerStage::kDone,
          "a session with an honest server did not complete");
    Check(session.server().sum() == session.PlainSum(), "the sum is wrong");
    return 0;
  }
  if (!answered) {
    // The victim refused the message and dropped out without answering: the
    // three others go on, and their sum is exact.
    Check(client.stage() == secagg::ClientStage::kAborted || client.NeedsInput(),
          "a client that refused a message is not aborted");
    Check(status.ok() && session.server().stage() == secagg::ServerStage::kDone,
          "the others did not complete after one client refused a message");
    Check(session.server().sum() == session.PlainSum(), "the others' sum is wrong");
  }
  return 0;
}
