#include "server/model_store.h"

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status.h"

namespace shoal {

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(
    const std::string& dir, std::string model_spec, std::shared_ptr<const ModelSigner> signer) {
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  return std::unique_ptr<ModelStore>(
      new ModelStore(dir, std::move(model_spec), std::move(signer)));
}

absl::StatusOr<ModelRecord> ModelStore::Save(int64_t version, const Parameters& params,
                                             const Metrics& metrics) {
  auto payload = std::make_shared<const ChunkedPayload>(SerializeParameters(params));
  ModelRecord record;
  record.version = version;
  record.model_spec = model_spec_;
  record.metrics = metrics;
  if (signer_ != nullptr) {
    // The digest the chunk header carries is the one devices check the
    // download against, so the signature covers exactly those bytes.
    SHOAL_ASSIGN_OR_RETURN(record.signature,
                           signer_->Sign(version, payload->header().sha256()));
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

std::optional<ModelRecord> ModelStore::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

}  // namespace shoal
