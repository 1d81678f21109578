// A model directory: versioned model files with their manifests. The server's
// model store and a client's local model cache share this layout, so the
// same code loads a model for inference from either:
//
//   DIR/model-000007.params   serialized ParametersProto of version 7
//   DIR/model-000007.json     its ModelRecord (version, SHA-256, model spec,
//                             code SHA-256, signature, metrics, ...)
//   DIR/latest.json           the ModelRecord of the newest version
//   DIR/code-<sha256>.pt      the TorchScript code of a TorchScript model,
//                             named by the SHA-256 of its bytes and stored
//                             once for every version that runs it
//
// Every file is written atomically (write, fsync, rename). A manifest never
// names a path: the code a version runs is its spec (a built-in) or the
// code file its code SHA-256 names, and both are covered by the signature
// (common/signing.h).
#ifndef SHOAL_COMMON_MODEL_DIR_H_
#define SHOAL_COMMON_MODEL_DIR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "common/signing.h"

namespace shoal {

// kLatestVersion asks for the newest version where a version is expected.
inline constexpr int64_t kLatestVersion = -1;

// kMaxModelCodeBytes bounds a TorchScript file Shoal reads, stores or
// downloads (256 MiB).
inline constexpr uint64_t kMaxModelCodeBytes = uint64_t{256} << 20;

struct ModelRecord {
  int64_t version = 0;      // 0 = initial model, r = after round r
  std::string sha256_hex;   // of the .params file
  uint64_t size_bytes = 0;
  // The canonical spec ("model" in the manifest): a built-in name such as
  // "cnn", or kTorchScriptModelSpec. Manifests of older versions may hold a
  // TorchScript path here; no verifier accepts those.
  std::string model_spec;
  // For a TorchScript model: the SHA-256 (64 lowercase hex digits,
  // "code_sha256") of its code, kept as DIR/ModelCodeFile(code_sha256_hex).
  // Empty for a built-in.
  std::string code_sha256_hex;
  Metrics metrics;          // e.g. test_accuracy after this round
  std::string params_file;  // file name inside the directory
  std::string created_at;   // RFC 3339, UTC
  // The server's Ed25519 signature over (version, SHA-256, spec, code
  // SHA-256) as common/signing.h defines it: 64 raw bytes, hex under
  // "signature" in the manifest. Empty (no "signature" key) for an unsigned
  // model.
  std::string signature;
  // Set for a serving version ("serving": {"run", "training_version"} in
  // the manifest): `version` is then the serving version and the signature
  // is a serving version's (common/signing.h), which covers this origin.
  std::optional<ServingOrigin> serving;
};

// ModelCode is the code a model runs: a built-in's name, or TorchScript
// bytes.
struct ModelCode {
  std::string spec;         // canonical: a built-in name or kTorchScriptModelSpec
  std::string torchscript;  // the TorchScript file's bytes; empty for a built-in
};

// IsTorchScriptPath tells whether a configured model spec names a
// TorchScript file (it ends in ".pt" or ".pth").
bool IsTorchScriptPath(const std::string& spec_text);

// ReadModelCode turns a configured model spec (a built-in name or a
// TorchScript file path) into the code it names: the path's bytes, read
// once (at most kMaxModelCodeBytes), under kTorchScriptModelSpec. Errors
// name the file. A built-in name is passed through unchecked.
absl::StatusOr<ModelCode> ReadModelCode(const std::string& spec_text);

// ModelCodeFile is the file name of code with SHA-256 `sha256_hex` in a
// model directory: "code-<sha256_hex>.pt".
std::string ModelCodeFile(const std::string& sha256_hex);

// WriteModelCodeFile stores TorchScript `bytes` in `dir` as
// ModelCodeFile(their SHA-256), atomically, unless an intact copy is there
// already, and returns the SHA-256 (hex). InvalidArgument when larger than
// kMaxModelCodeBytes.
absl::StatusOr<std::string> WriteModelCodeFile(const std::string& dir, const std::string& bytes);

// ReadModelCodeFile reads the code with SHA-256 `sha256_hex` from `dir`.
// NotFound when the file is missing; DataLoss when its bytes do not hash to
// `sha256_hex` (altered or corrupt); InvalidArgument for a malformed hash.
absl::StatusOr<std::string> ReadModelCodeFile(const std::string& dir,
                                              const std::string& sha256_hex);

// SignedModelOf is what a signature over `record` covers, with the weights'
// digest `weights_sha256` (32 raw bytes) computed by the caller from the
// bytes it holds (never taken from the manifest). DataLoss when
// code_sha256_hex is not hex.
absl::StatusOr<SignedModel> SignedModelOf(const ModelRecord& record,
                                          const std::string& weights_sha256);

// LoadedModelVersion is a version read from a model directory: its
// manifest, weights and code.
struct LoadedModelVersion {
  ModelRecord record;
  Parameters params;
  // The code it runs: record.model_spec, and for a TorchScript model the
  // bytes of its code file (hash checked). For a legacy manifest that names
  // a TorchScript path, `spec` holds that path and `torchscript` is empty;
  // such a model never verifies.
  ModelCode code;
};

// LoadModelVersion reads a version (kLatestVersion: the newest) with its
// code, checks the weights and the code against the manifest's SHA-256s
// (DataLoss), and, with a `verifier`, checks the signature over version,
// weights, spec and code before anything is parsed (PermissionDenied, for an
// unsigned model too).
absl::StatusOr<LoadedModelVersion> LoadModelVersion(const std::string& dir,
                                                    int64_t version = kLatestVersion,
                                                    const ModelVerifier* verifier = nullptr);

// ModelKind: what a model directory must hold.
enum class ModelKind { kTraining, kServing };

// LoadModelVersion of `kind`: as above, and a manifest of the other kind is
// refused (PermissionDenied with a verifier, DataLoss without), so a
// training version put in a serving directory is never served.
absl::StatusOr<LoadedModelVersion> LoadModelVersion(const std::string& dir, int64_t version,
                                                    const ModelVerifier* verifier,
                                                    ModelKind kind);

// WriteModelVersion stores `payload` (a serialized ParametersProto) as
// version `record.version` and makes it the latest. Fills in sha256_hex,
// size_bytes, params_file and created_at.
absl::StatusOr<ModelRecord> WriteModelVersion(const std::string& dir,
                                              ModelRecord record,
                                              const std::string& payload);

// ReadModelRecord reads DIR/latest.json (kLatestVersion) or the manifest of
// a given version. NotFound when the directory has no such model.
absl::StatusOr<ModelRecord> ReadModelRecord(const std::string& dir,
                                            int64_t version = kLatestVersion);

// ParseModelRecord parses a manifest's text (what ReadModelRecord reads from
// a file); `source` names it in errors. DataLoss when the text is not a
// manifest or names a params file outside the directory.
absl::StatusOr<ModelRecord> ParseModelRecord(const std::string& text,
                                             const std::string& source);

// ReadModelPayload reads a version's .params file and checks its SHA-256
// against the manifest (DataLoss on mismatch).
absl::StatusOr<std::string> ReadModelPayload(const std::string& dir,
                                             const ModelRecord& record);

// LoadModelParameters is LoadModelVersion without the code: the weights of
// a version whose manifest, weights, code and (with a `verifier`) signature
// all check out.
absl::StatusOr<Parameters> LoadModelParameters(const std::string& dir,
                                               ModelRecord* record = nullptr,
                                               int64_t version = kLatestVersion,
                                               const ModelVerifier* verifier = nullptr);

// RemoveModelVersionsBefore deletes versions older than `version` (a client
// keeps only its newest model). RemoveModelVersionsAfter deletes versions
// newer than `version` (a server resuming from the checkpoint of round
// `version` drops the models of rounds that never completed). Both return
// the names of the files removed.
std::vector<std::string> RemoveModelVersionsBefore(const std::string& dir, int64_t version);

// ListModelVersions returns the versions `dir` holds a manifest of
// (model-N.json), ascending; none for a missing folder. Whether each one
// reads and verifies is for LoadModelVersion to say.
std::vector<int64_t> ListModelVersions(const std::string& dir);
std::vector<std::string> RemoveModelVersionsAfter(const std::string& dir, int64_t version);

}  // namespace shoal

#endif  // SHOAL_COMMON_MODEL_DIR_H_
