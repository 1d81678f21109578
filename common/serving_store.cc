#include "common/serving_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal {

absl::StatusOr<ServingStore> ServingStore::Open(ServingStoreOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("the serving store needs a folder");
  if (options.verifier == nullptr) {
    return absl::InvalidArgumentError(
        "the serving store needs the model-signing public key: serving versions are always "
        "signed");
  }
  if (options.keep < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the serving store keeps 0 or more older versions, got ", options.keep));
  }
  SHOAL_RETURN_IF_ERROR(MakeDirectories(options.dir));
  return ServingStore(std::move(options));
}

absl::Status ServingStore::Install(const ModelRecord& record, const std::string& payload,
                                   const ModelCode& code) {
  SHOAL_RETURN_IF_ERROR(Verify(record, payload, code));
  if (!code.torchscript.empty()) {
    SHOAL_RETURN_IF_ERROR(WriteModelCodeFile(options_.dir, code.torchscript).status());
  }
  SHOAL_RETURN_IF_ERROR(WriteModelVersion(options_.dir, record, payload).status());
  const std::vector<int64_t> now = versions();
  const size_t keep = static_cast<size_t>(options_.keep) + 1;
  if (now.size() > keep) RemoveModelVersionsBefore(options_.dir, now[now.size() - keep]);
  return absl::OkStatus();
}

absl::Status ServingStore::Verify(const ModelRecord& record, const std::string& payload,
                                  const ModelCode& code) const {
  const std::string what = absl::StrCat("serving version ", record.version);
  if (!record.serving) {
    return absl::PermissionDeniedError(absl::StrCat(
        "model version ", record.version,
        " is a training version, not a serving version: only a promotion on the server makes "
        "one"));
  }
  // The code must be the code the manifest names (and the signature covers).
  if (record.code_sha256_hex.empty() != code.torchscript.empty() ||
      (!code.torchscript.empty() && Sha256Hex(code.torchscript) != record.code_sha256_hex)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the code given is not the code its manifest names"));
  }
  SHOAL_ASSIGN_OR_RETURN(SignedModel signed_model, SignedModelOf(record, Sha256(payload)));
  SHOAL_RETURN_IF_ERROR(options_.verifier->Verify(signed_model, record.signature));
  const std::vector<int64_t> held = versions();
  if (!held.empty() && record.version <= held.back()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " is not newer than serving version ", held.back(),
        " which this device holds; serving versions only move forward (a rollback is a new "
        "version)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LoadedModelVersion>> ServingStore::LoadNewest(
    std::vector<std::string>* skipped) const {
  const std::vector<int64_t> held = versions();
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    absl::StatusOr<LoadedModelVersion> loaded =
        LoadModelVersion(options_.dir, *it, options_.verifier.get(), ModelKind::kServing);
    if (loaded.ok()) return std::optional<LoadedModelVersion>(*std::move(loaded));
    if (skipped != nullptr) {
      skipped->push_back(absl::StrCat("serving version ", *it, ": ", loaded.status().message()));
    }
  }
  return std::optional<LoadedModelVersion>();
}

std::vector<int64_t> ServingStore::versions() const { return ListModelVersions(options_.dir); }

}  // namespace shoal
