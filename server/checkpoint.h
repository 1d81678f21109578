// Checkpoint: what a server killed at any moment needs to resume its run
// after the last completed round. Kept in a folder of its own (the server
// uses OUTPUT_DIR/checkpoint):
//
//   DIR/checkpoint.json              round, model version and SHA-256, run
//                                    identity and config, client IDs, the
//                                    round history; names the state blob
//   DIR/strategy-<sha256>.state      the strategy's SaveState() tensors
//
// The blob is written first and named by its hash, then checkpoint.json
// replaces the previous one (write, fsync, rename, fsync the folder), then
// blobs no longer named are removed. A kill at any point leaves a complete
// checkpoint: the previous one until the rename, the new one after it.
#ifndef SHOAL_SERVER_CHECKPOINT_H_
#define SHOAL_SERVER_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/parameters.h"
#include "common/types.h"
#include "server/coordinator.h"

namespace shoal {

// RunIdentity: which run a checkpoint belongs to. A restart resumes only a
// checkpoint whose config fingerprint matches its own.
struct RunIdentity {
  std::string name;    // the config's "name"
  std::string run_id;  // random, chosen when the run started fresh
  // The config the fingerprint is of (see ConfigFingerprint), kept so that a
  // refused restart can name the keys that differ.
  nlohmann::json config = nlohmann::json::object();
  std::string config_fingerprint;  // SHA-256 hex of config.dump()
};

struct Checkpoint {
  RunIdentity run;
  uint32_t round = 0;       // the last completed round (0 = initial model)
  uint32_t num_rounds = 0;  // the rounds planned when it was written
  // Non-empty when the run ended for good after `round` (target accuracy
  // reached, the strategy stopped it): a restart does not train on.
  std::string stop_reason;
  int64_t model_version = 0;     // the global model after `round`
  std::string model_sha256_hex;  // of its .params file in the model store
  Parameters strategy_state;     // Strategy::SaveState() after `round`
  std::vector<std::string> client_ids;  // registered clients, sorted
  // What each registered client declared at Join (issue 14.6: the bound on
  // its num_examples); clients that declared nothing are absent. Kept so a
  // restart does not lift the bound until every device joins again.
  std::map<std::string, DeclaredExamples> declared_examples;
  std::vector<RoundRecord> history;     // rounds 0..round, as reported
  std::string created_at;               // RFC 3339, UTC; set when written

  // Finished: nothing is left to run with `num_rounds` rounds planned.
  bool Finished(uint32_t planned_rounds) const {
    return !stop_reason.empty() || round >= planned_rounds;
  }
};

// kCheckpointFile is the checkpoint's JSON inside its folder.
inline constexpr char kCheckpointFile[] = "checkpoint.json";

// WriteCheckpoint makes `checkpoint` the one in `dir` (created if missing),
// atomically as described above; sets created_at.
absl::Status WriteCheckpoint(const std::string& dir, Checkpoint checkpoint);

// ReadCheckpoint reads and validates the checkpoint in `dir`: NotFound when
// there is none; DataLoss naming the file and field when it is malformed,
// or when its strategy state is missing or does not match its SHA-256.
// Temporary files of an interrupted write are ignored.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& dir);

// RemoveCheckpoint deletes `dir` and everything in it (`shoal server
// --fresh`). No error when it does not exist.
absl::Status RemoveCheckpoint(const std::string& dir);

// LoadCheckpointedModel loads the checkpoint's global model from the model
// store folder `model_dir`: FailedPrecondition when that version is missing
// or its SHA-256 differs from the checkpoint's (the store was changed after
// the checkpoint was written); DataLoss when the file is corrupt.
absl::StatusOr<Parameters> LoadCheckpointedModel(const Checkpoint& checkpoint,
                                                 const std::string& model_dir);

// ConfigFingerprint is the SHA-256 hex of `config.dump()` (nlohmann sorts
// object keys, so equal configs give equal fingerprints).
std::string ConfigFingerprint(const nlohmann::json& config);

// ConfigDifferences lists the keys, as dotted paths ("fit.learning_rate"),
// whose values differ between two configs, sorted; empty when equal.
std::vector<std::string> ConfigDifferences(const nlohmann::json& a, const nlohmann::json& b);

// CheckpointWriter is what a Coordinator writes its checkpoints with: it
// adds the run's identity and the registered clients to what the
// Coordinator gives. Called on the Coordinator's thread.
class CheckpointWriter {
 public:
  // `clients` gives the registered clients with what each declared, when a
  // checkpoint is written (may be null: none).
  using RegisteredClients = std::function<std::map<std::string, DeclaredExamples>()>;
  CheckpointWriter(std::string dir, RunIdentity run, RegisteredClients clients = nullptr)
      : dir_(std::move(dir)), run_(std::move(run)), clients_(std::move(clients)) {}

  // Save fills in the run and the clients and writes the checkpoint.
  absl::Status Save(Checkpoint checkpoint);

  const std::string& dir() const { return dir_; }
  const RunIdentity& run() const { return run_; }

 private:
  const std::string dir_;
  const RunIdentity run_;
  const RegisteredClients clients_;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_CHECKPOINT_H_
