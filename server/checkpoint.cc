#include "server/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/json.h"
#include "common/json_fields.h"
#include "common/model_dir.h"
#include "common/quote.h"
#include "common/sha256.h"
#include "common/status.h"
#include "server/round_json.h"

namespace shoal {
namespace {

using nlohmann::json;

// Bumped when the layout changes in a way an older reader would misread.
// Format 2 writes rounds by RoundRecordToJson (format 1 named a failure's
// error "message" and the secure-aggregation figures "secagg"); both are read.
constexpr int kFormat = 2;
constexpr int kOldestFormat = 1;
constexpr char kStatePrefix[] = "strategy-";
constexpr char kStateSuffix[] = ".state";
// A checkpoint holds one small record per round (at most 10^6 rounds).
constexpr size_t kMaxCheckpointBytes = size_t{1} << 30;

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

void CollectDifferences(const json& a, const json& b, const std::string& path,
                        std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& [k, v] : b.items()) keys.insert(k);
    for (const std::string& k : keys) {
      const std::string sub = path.empty() ? k : absl::StrCat(path, ".", k);
      if (!a.contains(k) || !b.contains(k)) {
        out.push_back(sub);
      } else {
        CollectDifferences(a.at(k), b.at(k), sub, out);
      }
    }
    return;
  }
  if (a == b) return;
  // Keys come from files: a long or unprintable path is shown bounded.
  const bool plain = path.size() <= 80 && std::all_of(path.begin(), path.end(), [](char c) {
                       return c >= 0x20 && c < 0x7f;
                     });
  out.push_back(path.empty() ? "(the whole config)" : plain ? path : QuoteForMessage(path, 80));
}

// RemoveStaleFiles deletes state blobs other than `keep` and temporary files
// of interrupted writes. Only one server writes a checkpoint folder, and it
// calls this after its own writes completed.
void RemoveStaleFiles(const std::string& dir, const std::string& keep) {
  std::error_code ec;
  std::vector<std::filesystem::path> stale;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool blob = absl::StartsWith(name, kStatePrefix) && name != keep;
    const bool tmp = absl::StrContains(name, ".tmp.");
    if (blob || tmp) stale.push_back(entry.path());
  }
  for (const auto& path : stale) std::filesystem::remove(path, ec);
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& dir, Checkpoint c) {
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  c.created_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  json state = nullptr;
  std::string state_file;
  if (!c.strategy_state.empty()) {
    const std::string bytes = SerializeParameters(c.strategy_state);
    const std::string sha = Sha256Hex(bytes);
    state_file = absl::StrCat(kStatePrefix, sha, kStateSuffix);
    // The blob first: the JSON that names it must never exist without it.
    SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir + "/" + state_file, bytes));
    state = {{"file", state_file}, {"sha256", sha}, {"size_bytes", bytes.size()}};
  }
  json history = json::array();
  for (const RoundRecord& r : c.history) history.push_back(RoundRecordToJson(r));
  json declared = json::object();
  for (const auto& [id, d] : c.declared_examples) {
    declared[id] = {{"train", d.train}, {"evaluate", d.evaluate}};
  }
  json j = {{"format", kFormat},
            {"run",
             {{"name", c.run.name},
              {"run_id", c.run.run_id},
              {"config_fingerprint", c.run.config_fingerprint},
              {"config", c.run.config}}},
            {"round", c.round},
            {"num_rounds", c.num_rounds},
            {"stop_reason", c.stop_reason},
            {"model", {{"version", c.model_version}, {"sha256", c.model_sha256_hex}}},
            {"strategy_state", state},
            {"clients", c.client_ids},
            {"declared_examples", declared},
            {"history", history},
            {"created_at", c.created_at}};
  SHOAL_RETURN_IF_ERROR(
      WriteFileAtomically(absl::StrCat(dir, "/", kCheckpointFile), j.dump(1) + "\n"));
  RemoveStaleFiles(dir, state_file);
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& dir) {
  const std::string file = absl::StrCat(dir, "/", kCheckpointFile);
  absl::StatusOr<std::string> text = ReadFile(file, kMaxCheckpointBytes);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat("no checkpoint in '", dir, "'"));
  }
  if (!text.ok()) return text.status();
  // The checkpoint nests the run's config three levels down.
  absl::StatusOr<json> parsed =
      ParseJson(*text, file, JsonLimits{kMaxCheckpointBytes, JsonLimits().max_depth + 8});
  if (!parsed.ok()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", parsed.status().message()));
  }
  JsonFields::Context context;
  context.code = absl::StatusCode::kDataLoss;
  context.prefix = absl::StrCat("checkpoint '", file, "': field ");
  context.stored_file = true;
  JsonFields j(*parsed, "", context);
  SHOAL_RETURN_IF_ERROR(j.Require({"format", "run", "round", "num_rounds", "stop_reason", "model",
                                   "clients", "history", "created_at", "strategy_state"}));
  Checkpoint c;
  int format = 0;
  SHOAL_RETURN_IF_ERROR(j.Integer("format", 0, std::numeric_limits<int>::max(), &format));
  if (format < kOldestFormat || format > kFormat) {
    return j.Error("format", absl::StrCat("is ", format, "; this server reads formats ",
                                          kOldestFormat, " to ", kFormat));
  }
  SHOAL_ASSIGN_OR_RETURN(JsonFields run, j.Object("run"));
  SHOAL_RETURN_IF_ERROR(run.Require({"name", "run_id", "config_fingerprint", "config"}));
  SHOAL_RETURN_IF_ERROR(run.String("name", &c.run.name));
  SHOAL_RETURN_IF_ERROR(run.String("run_id", &c.run.run_id));
  SHOAL_RETURN_IF_ERROR(run.String("config_fingerprint", &c.run.config_fingerprint));
  SHOAL_ASSIGN_OR_RETURN(JsonFields config, run.Object("config"));
  c.run.config = config.object();
  if (ConfigFingerprint(c.run.config) != c.run.config_fingerprint) {
    return run.Error("config_fingerprint", "does not match run.config (edited by hand?)");
  }
  SHOAL_RETURN_IF_ERROR(j.Integer("round", 0, kMaxRounds, &c.round));
  SHOAL_RETURN_IF_ERROR(j.Integer("num_rounds", 1, kMaxRounds, &c.num_rounds));
  if (c.round > c.num_rounds) {
    return j.Error("round", absl::StrCat("is ", c.round, ", past num_rounds ", c.num_rounds));
  }
  SHOAL_RETURN_IF_ERROR(j.String("stop_reason", &c.stop_reason));
  SHOAL_ASSIGN_OR_RETURN(JsonFields model, j.Object("model"));
  SHOAL_RETURN_IF_ERROR(model.Require({"version", "sha256"}));
  SHOAL_RETURN_IF_ERROR(model.Integer("version", 0, c.round, &c.model_version));
  SHOAL_RETURN_IF_ERROR(model.String("sha256", &c.model_sha256_hex));
  if (!IsSha256Hex(c.model_sha256_hex)) return model.Error("sha256", "is not a SHA-256 in hex");
  SHOAL_RETURN_IF_ERROR(j.Strings("clients", &c.client_ids));
  // Absent in checkpoints written before declarations were kept.
  if (j.Has("declared_examples")) {
    SHOAL_ASSIGN_OR_RETURN(auto declared, j.Members("declared_examples"));
    const std::set<std::string> known(c.client_ids.begin(), c.client_ids.end());
    for (auto& [id, d] : declared) {
      if (known.count(id) == 0) return j.Error(d.path(), "names no registered client");
      SHOAL_RETURN_IF_ERROR(d.Require({"train", "evaluate"}));
      DeclaredExamples counts;
      constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
      SHOAL_RETURN_IF_ERROR(d.Integer("train", 0, kMax, &counts.train));
      SHOAL_RETURN_IF_ERROR(d.Integer("evaluate", 0, kMax, &counts.evaluate));
      c.declared_examples[id] = counts;
    }
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<JsonFields> history, j.Objects("history"));
  if (history.size() != size_t{c.round} + 1) {
    return j.Error("history", absl::StrCat("holds ", history.size(), " rounds; round ", c.round,
                                           " needs rounds 0 to ", c.round));
  }
  for (size_t i = 0; i < history.size(); ++i) {
    SHOAL_ASSIGN_OR_RETURN(RoundRecord r, RoundRecordFromJson(history[i]));
    if (r.round != i) return history[i].Error("round", absl::StrCat("is ", r.round, ", not ", i));
    c.history.push_back(std::move(r));
  }
  SHOAL_RETURN_IF_ERROR(j.String("created_at", &c.created_at));

  if (!j.IsNull("strategy_state")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields state, j.Object("strategy_state"));
    SHOAL_RETURN_IF_ERROR(state.Require({"file", "sha256"}));
    std::string name, sha;
    SHOAL_RETURN_IF_ERROR(state.String("file", &name));
    SHOAL_RETURN_IF_ERROR(state.String("sha256", &sha));
    if (name != absl::StrCat(kStatePrefix, sha, kStateSuffix) || !IsSha256Hex(sha)) {
      return state.Error("file",
                         absl::StrCat(QuoteForMessage(name), " is not named by its SHA-256"));
    }
    absl::StatusOr<std::string> bytes = ReadFile(dir + "/" + name);
    if (!bytes.ok()) {
      return state.Error(
          "file",
          absl::StrCat("names '", name, "', which cannot be read: ", bytes.status().message()));
    }
    if (Sha256Hex(*bytes) != sha) {
      return state.Error("sha256",
                         absl::StrCat("does not match the contents of '", name, "' (corrupt)"));
    }
    absl::StatusOr<Parameters> parsed = ParseParameters(*bytes);
    if (!parsed.ok()) {
      return state.Error("file",
                         absl::StrCat("'", name, "' does not parse: ", parsed.status().message()));
    }
    c.strategy_state = *std::move(parsed);
  }
  return c;
}

absl::Status RemoveCheckpoint(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot remove the checkpoint '", dir, "': ", ec.message()));
  }
  const std::string parent = std::filesystem::path(dir).parent_path().string();
  return std::filesystem::is_directory(parent, ec) ? SyncDirectory(parent) : absl::OkStatus();
}

absl::StatusOr<Parameters> LoadCheckpointedModel(const Checkpoint& c,
                                                 const std::string& model_dir) {
  absl::StatusOr<ModelRecord> record = ReadModelRecord(model_dir, c.model_version);
  if (absl::IsNotFound(record.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint of round ", c.round, " names global model version ", c.model_version,
        ", which is missing from the model store '", model_dir, "'"));
  }
  if (!record.ok()) return record.status();
  if (record->sha256_hex != c.model_sha256_hex) {
    return absl::FailedPreconditionError(absl::StrCat(
        "global model version ", c.model_version, " in '", model_dir, "' has SHA-256 ",
        record->sha256_hex, " but the checkpoint of round ", c.round, " names ",
        c.model_sha256_hex, "; the store was changed after the checkpoint was written"));
  }
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadModelPayload(model_dir, *record));
  return Annotate(ParseParameters(payload), absl::StrCat(model_dir, "/", record->params_file));
}

std::string ConfigFingerprint(const json& config) { return Sha256Hex(config.dump()); }

std::vector<std::string> ConfigDifferences(const json& a, const json& b) {
  std::vector<std::string> out;
  CollectDifferences(a, b, "", out);
  return out;
}

absl::Status CheckpointWriter::Save(Checkpoint checkpoint) {
  checkpoint.run = run_;
  if (clients_) {
    for (const auto& [id, declared] : clients_()) {
      checkpoint.client_ids.push_back(id);
      if (declared.train > 0 || declared.evaluate > 0) {
        checkpoint.declared_examples[id] = declared;
      }
    }
  }
  return WriteCheckpoint(dir_, std::move(checkpoint));
}

}  // namespace shoal
