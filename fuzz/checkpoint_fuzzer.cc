// Checkpoints: ReadCheckpoint (server/checkpoint.h) on an arbitrary
// checkpoint.json, as a restarting server reads it. The file is the
// server's own, but anyone with write access to the output directory (or a
// disk error) can change it, and the server parses it before anything else.
//
// Properties: nothing crashes; a checkpoint that reads back holds the
// history of rounds 0 to `round` and no more rounds than planned, and its
// fingerprint matches its config.
//
// Input: the text of checkpoint.json, through ExpandRepeats
// (fuzz/fuzz_support.h) so that deep nesting and long values are in reach.
// The strategy-state blob is not written: a checkpoint naming one is
// refused for the missing file, past every check of the JSON itself.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/files.h"
#include "fuzz/fuzz_support.h"
#include "server/checkpoint.h"

namespace shoal::fuzz {
namespace {

std::vector<std::string> Seeds() {
  Checkpoint c;
  c.run.name = "fuzz";
  c.run.run_id = "0123456789abcdef";
  c.run.config = {{"seed", 7}, {"strategy", {{"name", "fedavg"}}}, {"fit", {{"batch_size", 8}}}};
  c.run.config_fingerprint = ConfigFingerprint(c.run.config);
  c.round = 1;
  c.num_rounds = 3;
  c.model_version = 1;
  c.model_sha256_hex = std::string(64, 'a');
  c.client_ids = {"client-0", "client-1"};
  for (uint32_t r = 0; r <= c.round; ++r) {
    RoundRecord record;
    record.round = r;
    record.sampled = 2;
    record.answered = 1;
    record.failures.push_back({"client-1", absl::DeadlineExceededError("late")});
    record.model_updated = r > 0;
    record.model_version = r;
    record.train_loss = 0.5;
    record.server_eval = EvaluateRes{100, 0.4, {{"accuracy", 0.75}}};
    record.strategy_metrics = {{"clients", int64_t{2}}};
    c.history.push_back(record);
  }
  const std::string dir = ScratchDir() + "/seed";
  std::vector<std::string> seeds;
  if (WriteCheckpoint(dir, c).ok()) seeds.push_back(*ReadFile(dir + "/" + kCheckpointFile));
  // Issue 14: a run.config nesting 100,000 levels crashed the server at start.
  std::string deep = seeds.empty() ? std::string("{}") : seeds[0];
  const size_t at = deep.find("\"seed\": 7");
  if (at != std::string::npos) deep.replace(at, 9, "\"seed\": {{100000*[}}{{100000*]}}");
  seeds.push_back(deep);
  return seeds;
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  const std::string text =
      ExpandRepeats(absl::string_view(reinterpret_cast<const char*>(data), size));
  const std::string& dir = ScratchDir();
  {
    std::ofstream out(dir + "/" + kCheckpointFile, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(dir);
  if (c.ok()) {
    Check(c->history.size() == size_t{c->round} + 1, "a checkpoint's history does not fit its round");
    Check(c->round <= c->num_rounds, "a checkpoint is past its planned rounds");
    Check(ConfigFingerprint(c->run.config) == c->run.config_fingerprint,
          "a checkpoint's fingerprint does not match its config");
  }
  std::remove((dir + "/" + kCheckpointFile).c_str());
  return 0;
}
