// A model directory: versioned model files with their manifests. The server's
// model store and a client's local model cache share this layout, so the
// same code loads a model for inference from either:
//
//   DIR/model-000007.params   serialized ParametersProto of version 7
//   DIR/model-000007.json     its ModelRecord (version, SHA-256, signature,
//                             metrics, ...)
//   DIR/latest.json           the ModelRecord of the newest version
//
// Every file is written atomically (write, fsync, rename).
#ifndef SHOAL_COMMON_MODEL_DIR_H_
#define SHOAL_COMMON_MODEL_DIR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "common/signing.h"

namespace shoal {

// kLatestVersion asks for the newest version where a version is expected.
inline constexpr int64_t kLatestVersion = -1;

struct ModelRecord {
  int64_t version = 0;      // 0 = initial model, r = after round r
  std::string sha256_hex;   // of the .params file
  uint64_t size_bytes = 0;
  std::string model_spec;   // e.g. "cnn" or a TorchScript path
  Metrics metrics;          // e.g. test_accuracy after this round
  std::string params_file;  // file name inside the directory
  std::string created_at;   // RFC 3339, UTC
  // The server's Ed25519 signature over (version, SHA-256) as
  // common/signing.h defines it: 64 raw bytes, hex under "signature" in the
  // manifest. Empty (no "signature" key) for an unsigned model.
  std::string signature;
};

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

// LoadModelParameters is ReadModelRecord + ReadModelPayload + parsing.
// With a `verifier`, the record's signature must verify over its version and
// the payload's SHA-256 before the payload is parsed (PermissionDenied
// otherwise, for an unsigned model too).
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
std::vector<std::string> RemoveModelVersionsAfter(const std::string& dir, int64_t version);

}  // namespace shoal

#endif  // SHOAL_COMMON_MODEL_DIR_H_
