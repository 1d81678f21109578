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
#include "common/quote.h"
#include "common/model_dir.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal {
namespace {

using nlohmann::json;

// Bumped when the layout changes in a way an older reader would misread.
constexpr int kFormat = 1;
constexpr char kStatePrefix[] = "strategy-";
constexpr char kStateSuffix[] = ".state";
// A checkpoint holds one small record per round (at most 10^6 rounds).
constexpr size_t kMaxCheckpointBytes = size_t{1} << 30;

json MetricsToJson(const Metrics& metrics) {
  json out = json::object();
  for (const auto& [k, v] : metrics) {
    std::visit([&out, key = k](auto x) { out[key] = x; }, v);
  }
  return out;
}

// Non-finite doubles become null in JSON and NaN again when read.
json Number(double d) { return std::isfinite(d) ? json(d) : json(nullptr); }

json EvaluateToJson(const std::optional<EvaluateRes>& res) {
  if (!res) return nullptr;
  return {{"num_examples", res->num_examples},
          {"loss", Number(res->loss)},
          {"metrics", MetricsToJson(res->metrics)}};
}

json RecordToJson(const RoundRecord& r) {
  json failures = json::array();
  for (const ClientFailure& f : r.failures) {
    failures.push_back({{"client", f.client_id},
                        {"code", static_cast<int>(f.status.code())},
                        {"message", std::string(f.status.message())}});
  }
  return {{"round", r.round},
          {"sampled", r.sampled},
          {"answered", r.answered},
          {"failures", failures},
          {"model_updated", r.model_updated},
          {"model_version", r.model_version},
          {"train_loss", Number(r.train_loss)},
          {"train_examples", r.train_examples},
          {"server_eval", EvaluateToJson(r.server_eval)},
          {"federated_eval", EvaluateToJson(r.federated_eval)},
          {"seconds", r.seconds},
          {"note", r.note},
          {"strategy_metrics", MetricsToJson(r.strategy_metrics)},
          {"secagg", MetricsToJson(r.secagg)}};
}

// FieldReader reads typed fields of the checkpoint's JSON; every error
// names the file and the field's dotted path.
class FieldReader {
 public:
  explicit FieldReader(std::string file) : file_(std::move(file)) {}

  absl::Status Error(const std::string& path, const std::string& what) const {
    return absl::DataLossError(
        absl::StrCat("checkpoint '", file_, "': field '", path, "' ", what));
  }

  absl::StatusOr<const json*> Get(const json& obj, const std::string& path, const char* key,
                                  json::value_t type) const {
    const std::string full = path.empty() ? key : absl::StrCat(path, ".", key);
    if (!obj.is_object() || !obj.contains(key)) return Error(full, "is missing");
    const json& v = obj.at(key);
    const bool ok = type == json::value_t::number_integer
                        ? v.is_number_integer()
                        : type == json::value_t::number_float ? v.is_number() || v.is_null()
                                                               : v.type() == type;
    if (!ok) return Error(full, absl::StrCat("has the wrong type (", v.type_name(), ")"));
    return &v;
  }
  template <typename T>
  absl::Status Int(const json& obj, const std::string& path, const char* key, T* out,
                   int64_t lo = 0, int64_t hi = std::numeric_limits<int64_t>::max()) const {
    SHOAL_ASSIGN_OR_RETURN(const json* v, Get(obj, path, key, json::value_t::number_integer));
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) {
      return Error(path.empty() ? key : absl::StrCat(path, ".", key),
                   absl::StrCat("is ", x, ", outside [", lo, ", ", hi, "]"));
    }
    *out = static_cast<T>(x);
    return absl::OkStatus();
  }
  absl::Status Double(const json& obj, const std::string& path, const char* key,
                      double* out) const {
    SHOAL_ASSIGN_OR_RETURN(const json* v, Get(obj, path, key, json::value_t::number_float));
    *out = v->is_null() ? std::numeric_limits<double>::quiet_NaN() : v->get<double>();
    return absl::OkStatus();
  }
  absl::Status String(const json& obj, const std::string& path, const char* key,
                      std::string* out) const {
    SHOAL_ASSIGN_OR_RETURN(const json* v, Get(obj, path, key, json::value_t::string));
    *out = v->get<std::string>();
    return absl::OkStatus();
  }
  absl::Status Bool(const json& obj, const std::string& path, const char* key,
                    bool* out) const {
    SHOAL_ASSIGN_OR_RETURN(const json* v, Get(obj, path, key, json::value_t::boolean));
    *out = v->get<bool>();
    return absl::OkStatus();
  }
  absl::Status MetricsField(const json& obj, const std::string& path, const char* key,
                            Metrics* out) const {
    SHOAL_ASSIGN_OR_RETURN(const json* v, Get(obj, path, key, json::value_t::object));
    for (const auto& [name, value] : v->items()) {
      if (value.is_number_integer()) {
        (*out)[name] = value.get<int64_t>();
      } else if (value.is_number()) {
        (*out)[name] = value.get<double>();
      } else if (value.is_null()) {
        (*out)[name] = std::numeric_limits<double>::quiet_NaN();
      } else {
        return Error(absl::StrCat(path, ".", key, ".", name), "is not a number");
      }
    }
    return absl::OkStatus();
  }
  absl::Status Evaluate(const json& obj, const std::string& path, const char* key,
                        std::optional<EvaluateRes>* out) const {
    const std::string full = absl::StrCat(path, ".", key);
    if (!obj.contains(key)) return Error(full, "is missing");
    if (obj.at(key).is_null()) return absl::OkStatus();
    const json& e = obj.at(key);
    EvaluateRes res;
    SHOAL_RETURN_IF_ERROR(Int(e, full, "num_examples", &res.num_examples));
    SHOAL_RETURN_IF_ERROR(Double(e, full, "loss", &res.loss));
    SHOAL_RETURN_IF_ERROR(MetricsField(e, full, "metrics", &res.metrics));
    *out = std::move(res);
    return absl::OkStatus();
  }

 private:
  const std::string file_;
};

absl::StatusOr<RoundRecord> RecordFromJson(const FieldReader& in, const json& j,
                                           const std::string& path) {
  RoundRecord r;
  SHOAL_RETURN_IF_ERROR(in.Int(j, path, "round", &r.round, 0, kMaxRounds));
  SHOAL_RETURN_IF_ERROR(in.Int(j, path, "sampled", &r.sampled));
  SHOAL_RETURN_IF_ERROR(in.Int(j, path, "answered", &r.answered));
  SHOAL_ASSIGN_OR_RETURN(const json* failures,
                         in.Get(j, path, "failures", json::value_t::array));
  for (size_t i = 0; i < failures->size(); ++i) {
    const std::string at = absl::StrCat(path, ".failures[", i, "]");
    ClientFailure f;
    int code = 0;
    std::string message;
    SHOAL_RETURN_IF_ERROR(in.String((*failures)[i], at, "client", &f.client_id));
    SHOAL_RETURN_IF_ERROR(in.Int((*failures)[i], at, "code", &code, 1, 16));
    SHOAL_RETURN_IF_ERROR(in.String((*failures)[i], at, "message", &message));
    f.status = absl::Status(static_cast<absl::StatusCode>(code), message);
    r.failures.push_back(std::move(f));
  }
  SHOAL_RETURN_IF_ERROR(in.Bool(j, path, "model_updated", &r.model_updated));
  SHOAL_RETURN_IF_ERROR(in.Int(j, path, "model_version", &r.model_version));
  SHOAL_RETURN_IF_ERROR(in.Double(j, path, "train_loss", &r.train_loss));
  SHOAL_RETURN_IF_ERROR(in.Int(j, path, "train_examples", &r.train_examples));
  SHOAL_RETURN_IF_ERROR(in.Evaluate(j, path, "server_eval", &r.server_eval));
  SHOAL_RETURN_IF_ERROR(in.Evaluate(j, path, "federated_eval", &r.federated_eval));
  SHOAL_RETURN_IF_ERROR(in.Double(j, path, "seconds", &r.seconds));
  SHOAL_RETURN_IF_ERROR(in.String(j, path, "note", &r.note));
  SHOAL_RETURN_IF_ERROR(in.MetricsField(j, path, "strategy_metrics", &r.strategy_metrics));
  SHOAL_RETURN_IF_ERROR(in.MetricsField(j, path, "secagg", &r.secagg));
  return r;
}

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
  for (const RoundRecord& r : c.history) history.push_back(RecordToJson(r));
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
  const json& j = *parsed;
  const FieldReader in(file);
  Checkpoint c;
  int format = 0;
  SHOAL_RETURN_IF_ERROR(in.Int(j, "", "format", &format));
  if (format != kFormat) {
    return in.Error("format", absl::StrCat("is ", format, "; this server reads format ",
                                           kFormat));
  }
  SHOAL_ASSIGN_OR_RETURN(const json* run, in.Get(j, "", "run", json::value_t::object));
  SHOAL_RETURN_IF_ERROR(in.String(*run, "run", "name", &c.run.name));
  SHOAL_RETURN_IF_ERROR(in.String(*run, "run", "run_id", &c.run.run_id));
  SHOAL_RETURN_IF_ERROR(in.String(*run, "run", "config_fingerprint", &c.run.config_fingerprint));
  SHOAL_ASSIGN_OR_RETURN(const json* config, in.Get(*run, "run", "config", json::value_t::object));
  c.run.config = *config;
  if (ConfigFingerprint(c.run.config) != c.run.config_fingerprint) {
    return in.Error("run.config_fingerprint", "does not match run.config (edited by hand?)");
  }
  SHOAL_RETURN_IF_ERROR(in.Int(j, "", "round", &c.round, 0, kMaxRounds));
  SHOAL_RETURN_IF_ERROR(in.Int(j, "", "num_rounds", &c.num_rounds, 1, kMaxRounds));
  if (c.round > c.num_rounds) {
    return in.Error("round", absl::StrCat("is ", c.round, ", past num_rounds ", c.num_rounds));
  }
  SHOAL_RETURN_IF_ERROR(in.String(j, "", "stop_reason", &c.stop_reason));
  SHOAL_ASSIGN_OR_RETURN(const json* model, in.Get(j, "", "model", json::value_t::object));
  SHOAL_RETURN_IF_ERROR(in.Int(*model, "model", "version", &c.model_version, 0, c.round));
  SHOAL_RETURN_IF_ERROR(in.String(*model, "model", "sha256", &c.model_sha256_hex));
  if (!IsSha256Hex(c.model_sha256_hex)) {
    return in.Error("model.sha256", "is not a SHA-256 in hex");
  }
  SHOAL_ASSIGN_OR_RETURN(const json* clients, in.Get(j, "", "clients", json::value_t::array));
  for (size_t i = 0; i < clients->size(); ++i) {
    if (!(*clients)[i].is_string()) {
      return in.Error(absl::StrCat("clients[", i, "]"), "is not a string");
    }
    c.client_ids.push_back((*clients)[i].get<std::string>());
  }
  // Absent in checkpoints written before declarations were kept.
  if (j.contains("declared_examples")) {
    SHOAL_ASSIGN_OR_RETURN(const json* declared,
                           in.Get(j, "", "declared_examples", json::value_t::object));
    const std::set<std::string> known(c.client_ids.begin(), c.client_ids.end());
    for (const auto& [id, d] : declared->items()) {
      const std::string at = absl::StrCat("declared_examples.", QuoteForMessage(id));
      if (known.count(id) == 0) return in.Error(at, "names no registered client");
      DeclaredExamples counts;
      SHOAL_RETURN_IF_ERROR(in.Int(d, at, "train", &counts.train));
      SHOAL_RETURN_IF_ERROR(in.Int(d, at, "evaluate", &counts.evaluate));
      c.declared_examples[id] = counts;
    }
  }
  SHOAL_ASSIGN_OR_RETURN(const json* history, in.Get(j, "", "history", json::value_t::array));
  if (history->size() != size_t{c.round} + 1) {
    return in.Error("history", absl::StrCat("holds ", history->size(), " rounds; round ",
                                            c.round, " needs rounds 0 to ", c.round));
  }
  for (size_t i = 0; i < history->size(); ++i) {
    const std::string at = absl::StrCat("history[", i, "]");
    SHOAL_ASSIGN_OR_RETURN(RoundRecord r, RecordFromJson(in, (*history)[i], at));
    if (r.round != i) return in.Error(at + ".round", absl::StrCat("is ", r.round, ", not ", i));
    c.history.push_back(std::move(r));
  }
  SHOAL_RETURN_IF_ERROR(in.String(j, "", "created_at", &c.created_at));

  if (!j.contains("strategy_state")) return in.Error("strategy_state", "is missing");
  const json& state = j.at("strategy_state");
  if (!state.is_null()) {
    std::string name, sha;
    SHOAL_RETURN_IF_ERROR(in.String(state, "strategy_state", "file", &name));
    SHOAL_RETURN_IF_ERROR(in.String(state, "strategy_state", "sha256", &sha));
    if (name != absl::StrCat(kStatePrefix, sha, kStateSuffix) || !IsSha256Hex(sha)) {
      return in.Error("strategy_state.file", absl::StrCat("'", name, "' is not named by its SHA-256"));
    }
    absl::StatusOr<std::string> bytes = ReadFile(dir + "/" + name);
    if (!bytes.ok()) {
      return in.Error("strategy_state.file",
                      absl::StrCat("names '", name, "', which cannot be read: ",
                                   bytes.status().message()));
    }
    if (Sha256Hex(*bytes) != sha) {
      return in.Error("strategy_state.sha256",
                      absl::StrCat("does not match the contents of '", name, "' (corrupt)"));
    }
    absl::StatusOr<Parameters> parsed = ParseParameters(*bytes);
    if (!parsed.ok()) {
      return in.Error("strategy_state.file", absl::StrCat("'", name, "' does not parse: ",
                                                          parsed.status().message()));
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
