#include "server/model_store.h"

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/model_delta.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal {
namespace {

// How far back a delta's base may be, in versions.
constexpr int64_t kMaxDeltaSpan = 4;

}  // namespace

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(
    const std::string& dir, std::string model_spec, std::shared_ptr<const ModelSigner> signer) {
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  SHOAL_ASSIGN_OR_RETURN(ModelCode code, ReadModelCode(model_spec));
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateModelSpec(code.spec), "model store"));
  std::string code_sha256_hex;
  std::shared_ptr<const ChunkedPayload> code_payload;
  if (!code.torchscript.empty()) {
    // Stored once, whatever the number of versions that run it; served from
    // memory, since every device of the run downloads it.
    SHOAL_ASSIGN_OR_RETURN(code_sha256_hex, WriteModelCodeFile(dir, code.torchscript));
    code_payload = std::make_shared<const ChunkedPayload>(std::move(code.torchscript));
  }
  return std::unique_ptr<ModelStore>(new ModelStore(dir, std::move(code.spec),
                                                    std::move(code_sha256_hex),
                                                    std::move(code_payload), std::move(signer)));
}

absl::StatusOr<ModelRecord> ModelStore::Save(int64_t version, const Parameters& params,
                                             const Metrics& metrics) {
  auto payload = std::make_shared<const ChunkedPayload>(SerializeParameters(params));
  ModelRecord record;
  record.version = version;
  record.model_spec = model_spec_;
  record.code_sha256_hex = code_sha256_hex_;
  record.metrics = metrics;
  if (signer_ != nullptr) {
    // The digests the chunk headers carry are the ones devices check the
    // downloads against, so the signature covers exactly those bytes.
    SHOAL_ASSIGN_OR_RETURN(
        record.signature,
        signer_->Sign(SignedModel{version, payload->header().sha256(), model_spec_,
                                  code_ != nullptr ? code_->header().sha256() : ""}));
  }
  SHOAL_ASSIGN_OR_RETURN(record, WriteModelVersion(dir_, record, payload->payload()));
  absl::MutexLock lock(&mu_);
  latest_ = record;
  latest_payload_ = std::move(payload);
  return record;
}

absl::StatusOr<StoredModel> ModelStore::Get(int64_t version) const {
  {
    absl::MutexLock lock(&mu_);
    if (latest_payload_ != nullptr && (version < 0 || version == latest_->version)) {
      return StoredModel{*latest_, latest_payload_};
    }
    if (latest_payload_ == nullptr) {
      return absl::NotFoundError("no global model has been saved yet");
    }
  }
  // Older versions are rare requests (a client catching up): read from disk.
  SHOAL_ASSIGN_OR_RETURN(ModelRecord record, ReadModelRecord(dir_, version));
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadModelPayload(dir_, record));
  return StoredModel{std::move(record), std::make_shared<const ChunkedPayload>(std::move(payload))};
}

absl::StatusOr<std::shared_ptr<const ChunkedPayload>> ModelStore::Payload(
    int64_t version) const {
  SHOAL_ASSIGN_OR_RETURN(StoredModel model, Get(version));
  return std::move(model.payload);
}

absl::StatusOr<std::shared_ptr<const ChunkedPayload>> ModelStore::Code(
    const std::string& sha256) const {
  if (code_ != nullptr && sha256 == code_->header().sha256()) return code_;
  if (sha256.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("a code SHA-256 is 32 bytes, got ", sha256.size()));
  }
  // A version of an earlier run that ran other code (rare: a client
  // catching up across a restart).
  absl::StatusOr<std::string> bytes = ReadModelCodeFile(dir_, HexEncode(sha256));
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(
        absl::StrCat("the model store holds no code with SHA-256 ", HexEncode(sha256)));
  }
  if (!bytes.ok()) return bytes.status();
  return std::make_shared<const ChunkedPayload>(*std::move(bytes));
}

absl::StatusOr<std::shared_ptr<const ChunkedPayload>> ModelStore::DeltaPayload(
    int64_t version, int64_t base) const {
  SHOAL_ASSIGN_OR_RETURN(const StoredModel target, Get(version));
  // A device asks for its base; the encoding costs the server a pass over
  // both models, so only recent bases are taken (the common one, the
  // version before, is encoded once per round).
  if (base >= target.record.version || target.record.version - base > kMaxDeltaSpan) {
    return absl::InvalidArgumentError(absl::StrCat("no delta of version ", target.record.version,
                                                   " from version ", base));
  }
  absl::MutexLock lock(&delta_mu_);
  if (delta_ != nullptr && delta_version_ == target.record.version && delta_base_ == base) {
    return delta_;
  }
  SHOAL_ASSIGN_OR_RETURN(const StoredModel from, Get(base));
  v1::ModelDelta delta;
  delta.set_base_version(from.record.version);
  SHOAL_ASSIGN_OR_RETURN(*delta.mutable_xor_deflate(),
                         EncodeModelDelta(from.payload->payload(), target.payload->payload()));
  std::string bytes = delta.SerializeAsString();
  if (bytes.size() >= target.payload->payload().size()) {
    return absl::InvalidArgumentError(absl::StrCat("the delta of version ", target.record.version,
                                                   " from ", base, " is no smaller than it"));
  }
  delta_ = std::make_shared<const ChunkedPayload>(std::move(bytes));
  delta_version_ = target.record.version;
  delta_base_ = base;
  return delta_;
}

std::optional<ModelRecord> ModelStore::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

}  // namespace shoal
