#include "common/model_dir.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/json.h"
#include "common/json_fields.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal {
namespace {

using nlohmann::json;

std::string Stem(int64_t version) {
  return absl::StrFormat("model-%06d", version);
}

json RecordToJson(const ModelRecord& r) {
  json j{{"version", r.version},
         {"sha256", r.sha256_hex},
         {"size_bytes", r.size_bytes},
         {"model", r.model_spec},
         {"metrics", MetricsToJson(r.metrics)},
         {"params_file", r.params_file},
         {"created_at", r.created_at}};
  if (!r.code_sha256_hex.empty()) j["code_sha256"] = r.code_sha256_hex;
  if (!r.signature.empty()) j["signature"] = HexEncode(r.signature);
  if (r.serving) {
    j["serving"] = {{"run", r.serving->run}, {"training_version", r.serving->training_version}};
  }
  return j;
}

// HexDecode reads lowercase or uppercase hex; false on anything else.
bool HexDecode(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  const auto nibble = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

bool IsSha256Hex(const std::string& hex) {
  return hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// RemoveModelVersionsWhere deletes the files of every version N
// (model-N.params, model-N.json) for which stale(N) holds, and returns their
// names. It lists the folder rather than try each candidate version: a
// folder holds a few versions, whatever the round number.
std::vector<std::string> RemoveModelVersionsWhere(const std::string& dir,
                                                  const std::function<bool(int64_t)>& stale) {
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    long long v = -1;
    char ext[8] = {0};
    if (std::sscanf(name.c_str(), "model-%lld.%7s", &v, ext) == 2 && v >= 0 && stale(v) &&
        (std::string(ext) == "params" || std::string(ext) == "json")) {
      paths.push_back(entry.path());
    }
  }
  std::vector<std::string> removed;
  for (const auto& path : paths) {
    if (std::filesystem::remove(path, ec)) removed.push_back(path.filename().string());
  }
  return removed;
}

}  // namespace

absl::StatusOr<ModelRecord> ParseModelRecord(const std::string& text,
                                             const std::string& source) {
  // A manifest is a flat object with one nested "metrics" object.
  absl::StatusOr<json> parsed = ParseJson(text, source, JsonLimits{size_t{1} << 20, 4});
  if (!parsed.ok()) {
    return absl::DataLossError(
        absl::StrCat("model manifest is malformed: ", parsed.status().message()));
  }
  JsonFields::Context context;
  context.code = absl::StatusCode::kDataLoss;
  context.prefix = absl::StrCat("model manifest '", source, "' is malformed: ");
  JsonFields j(*parsed, "", context);
  if (!parsed->is_object()) return j.Finish();  // names what it is instead
  SHOAL_RETURN_IF_ERROR(j.Require({"version", "sha256", "size_bytes", "model", "params_file"}));
  ModelRecord r;
  // A version or size is a non-negative integer: never a float (nlohmann's
  // get<int64_t>() of 1e300 would be undefined behaviour).
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  SHOAL_RETURN_IF_ERROR(j.Integer("version", 0, kMax, &r.version));
  SHOAL_RETURN_IF_ERROR(j.Integer("size_bytes", 0, kMax, &r.size_bytes));
  SHOAL_RETURN_IF_ERROR(j.String("sha256", &r.sha256_hex));
  SHOAL_RETURN_IF_ERROR(j.String("model", &r.model_spec));
  SHOAL_RETURN_IF_ERROR(j.String("params_file", &r.params_file));
  SHOAL_RETURN_IF_ERROR(j.String("created_at", &r.created_at));
  SHOAL_RETURN_IF_ERROR(j.String("code_sha256", &r.code_sha256_hex));
  std::string signature;
  SHOAL_RETURN_IF_ERROR(j.String("signature", &signature));
  if (j.Has("signature") && !HexDecode(signature, &r.signature)) {
    return absl::DataLossError(
        absl::StrCat("model manifest '", source, "' has a signature that is not hex"));
  }
  SHOAL_RETURN_IF_ERROR(j.Metrics("metrics", &r.metrics));
  if (j.Has("serving")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields serving, j.Object("serving"));
    SHOAL_RETURN_IF_ERROR(serving.Require({"run", "training_version"}));
    ServingOrigin origin;
    SHOAL_RETURN_IF_ERROR(serving.String("run", &origin.run));
    SHOAL_RETURN_IF_ERROR(serving.Integer("training_version", 0, kMax, &origin.training_version));
    SHOAL_RETURN_IF_ERROR(serving.Finish());
    if (absl::Status valid = ValidateRunId(origin.run); !valid.ok()) {
      return absl::DataLossError(absl::StrCat("model manifest '", source, "': field 'serving.run': ",
                                              valid.message()));
    }
    r.serving = std::move(origin);
  }
  // The manifest names a file inside the directory, never a path elsewhere.
  if (r.params_file.empty() || r.params_file.find('/') != std::string::npos) {
    return absl::DataLossError(absl::StrCat(
        "model manifest '", source, "' names an invalid params file '",
        r.params_file, "'"));
  }
  // It names the code file: 64 lowercase hex digits, nothing else.
  if (!r.code_sha256_hex.empty() && !IsSha256Hex(r.code_sha256_hex)) {
    return absl::DataLossError(absl::StrCat("model manifest '", source,
                                            "' has a code_sha256 that is not 64 lowercase "
                                            "hex digits"));
  }
  return r;
}

absl::StatusOr<ModelRecord> WriteModelVersion(const std::string& dir,
                                              ModelRecord record,
                                              const std::string& payload) {
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  record.params_file = Stem(record.version) + ".params";
  record.sha256_hex = Sha256Hex(payload);
  record.size_bytes = payload.size();
  record.created_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir + "/" + record.params_file, payload));
  const std::string manifest = RecordToJson(record).dump(2) + "\n";
  SHOAL_RETURN_IF_ERROR(
      WriteFileAtomically(dir + "/" + Stem(record.version) + ".json", manifest));
  // latest.json last: until it is renamed, readers see the previous version.
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir + "/latest.json", manifest));
  return record;
}

absl::StatusOr<ModelRecord> ReadModelRecord(const std::string& dir, int64_t version) {
  const std::string path =
      version < 0 ? dir + "/latest.json" : dir + "/" + Stem(version) + ".json";
  absl::StatusOr<std::string> text = ReadFile(path, 1 << 20);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat(
        "no model ", version < 0 ? "" : absl::StrCat("version ", version, " "),
        "in '", dir, "' (", path, " is missing)"));
  }
  if (!text.ok()) return text.status();
  return ParseModelRecord(*text, path);
}

absl::StatusOr<std::string> ReadModelPayload(const std::string& dir,
                                             const ModelRecord& record) {
  const std::string path = dir + "/" + record.params_file;
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadFile(path));
  if (Sha256Hex(payload) != record.sha256_hex) {
    return absl::DataLossError(absl::StrCat(
        "model file '", path, "' does not match the SHA-256 in its manifest; "
        "it is corrupt or was modified"));
  }
  return payload;
}

bool IsTorchScriptPath(const std::string& spec_text) {
  return absl::EndsWith(spec_text, ".pt") || absl::EndsWith(spec_text, ".pth");
}

absl::StatusOr<ModelCode> ReadModelCode(const std::string& spec_text) {
  if (!IsTorchScriptPath(spec_text)) return ModelCode{spec_text, ""};
  absl::StatusOr<std::string> bytes = ReadFile(spec_text, kMaxModelCodeBytes);
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("TorchScript model file '", spec_text, "' not found"));
  }
  if (!bytes.ok())
    return Annotate(bytes.status(), absl::StrCat("TorchScript model file '", spec_text, "'"));
  if (bytes->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TorchScript model file '", spec_text, "' is empty"));
  }
  return ModelCode{kTorchScriptModelSpec, *std::move(bytes)};
}

std::string ModelCodeFile(const std::string& sha256_hex) {
  return absl::StrCat("code-", sha256_hex, ".pt");
}

absl::StatusOr<std::string> WriteModelCodeFile(const std::string& dir, const std::string& bytes) {
  if (bytes.size() > kMaxModelCodeBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TorchScript code of ", bytes.size(), " bytes exceeds the limit of ", kMaxModelCodeBytes));
  }
  const std::string sha256_hex = Sha256Hex(bytes);
  // Content-addressed: an intact copy is the same code; a damaged one is
  // replaced.
  if (ReadModelCodeFile(dir, sha256_hex).ok()) return sha256_hex;
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir + "/" + ModelCodeFile(sha256_hex), bytes));
  return sha256_hex;
}

absl::StatusOr<std::string> ReadModelCodeFile(const std::string& dir,
                                              const std::string& sha256_hex) {
  if (!IsSha256Hex(sha256_hex)) {
    return absl::InvalidArgumentError("a code SHA-256 is 64 lowercase hex digits");
  }
  const std::string path = dir + "/" + ModelCodeFile(sha256_hex);
  absl::StatusOr<std::string> bytes = ReadFile(path, kMaxModelCodeBytes);
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("the model's code '", path, "' is missing"));
  }
  if (!bytes.ok()) return bytes.status();
  if (Sha256Hex(*bytes) != sha256_hex) {
    return absl::DataLossError(absl::StrCat("the model's code '", path,
                                            "' does not match the SHA-256 in its name; it is "
                                            "corrupt or was modified"));
  }
  return bytes;
}

absl::StatusOr<SignedModel> SignedModelOf(const ModelRecord& record,
                                          const std::string& weights_sha256) {
  SignedModel model{record.version, weights_sha256, record.model_spec, "", record.serving};
  if (!record.code_sha256_hex.empty() && !HexDecode(record.code_sha256_hex, &model.code_sha256)) {
    return absl::DataLossError(
        absl::StrCat("model version ", record.version, ": code_sha256 is not hex"));
  }
  return model;
}

absl::StatusOr<LoadedModelVersion> LoadModelVersion(const std::string& dir, int64_t version,
                                                    const ModelVerifier* verifier) {
  return LoadModelVersion(dir, version, verifier, ModelKind::kTraining);
}

absl::StatusOr<LoadedModelVersion> LoadModelVersion(const std::string& dir, int64_t version,
                                                    const ModelVerifier* verifier,
                                                    ModelKind kind) {
  LoadedModelVersion loaded;
  SHOAL_ASSIGN_OR_RETURN(loaded.record, ReadModelRecord(dir, version));
  const ModelRecord& r = loaded.record;
  if (r.serving.has_value() != (kind == ModelKind::kServing)) {
    const std::string what = absl::StrCat(
        "model in '", dir, "': version ", r.version, " is ",
        r.serving ? "a serving version" : "a training version", " where a ",
        kind == ModelKind::kServing ? "serving" : "training", " version is expected");
    return verifier != nullptr ? absl::PermissionDeniedError(what) : absl::DataLossError(what);
  }
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadModelPayload(dir, r));
  loaded.code.spec = r.model_spec;
  if (!r.code_sha256_hex.empty()) {
    SHOAL_ASSIGN_OR_RETURN(loaded.code.torchscript, ReadModelCodeFile(dir, r.code_sha256_hex));
  }
  if (verifier != nullptr) {
    // Hash the bytes just read, not the manifest's claim about them (the
    // code's bytes were checked against their hash as they were read).
    SHOAL_ASSIGN_OR_RETURN(SignedModel signed_model, SignedModelOf(r, Sha256(payload)));
    SHOAL_RETURN_IF_ERROR(Annotate(verifier->Verify(signed_model, r.signature),
                                   absl::StrCat("model in '", dir, "'")));
  }
  absl::StatusOr<Parameters> params = ParseParameters(payload);
  if (!params.ok()) return Annotate(params.status(), dir + "/" + r.params_file);
  loaded.params = *std::move(params);
  return loaded;
}

absl::StatusOr<Parameters> LoadModelParameters(const std::string& dir, ModelRecord* record,
                                               int64_t version, const ModelVerifier* verifier) {
  SHOAL_ASSIGN_OR_RETURN(LoadedModelVersion loaded, LoadModelVersion(dir, version, verifier));
  if (record != nullptr) *record = std::move(loaded.record);
  return std::move(loaded.params);
}

std::vector<std::string> RemoveModelVersionsBefore(const std::string& dir, int64_t version) {
  return RemoveModelVersionsWhere(dir, [version](int64_t v) { return v < version; });
}

std::vector<int64_t> ListModelVersions(const std::string& dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    long long v = -1;
    char ext[8] = {0};
    if (std::sscanf(name.c_str(), "model-%lld.%7s", &v, ext) == 2 && v >= 0 &&
        std::string(ext) == "json" && name == Stem(v) + ".json") {
      versions.push_back(v);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

std::vector<std::string> RemoveModelVersionsAfter(const std::string& dir, int64_t version) {
  return RemoveModelVersionsWhere(dir, [version](int64_t v) { return v > version; });
}

}  // namespace shoal
