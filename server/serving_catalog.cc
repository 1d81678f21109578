#include "server/serving_catalog.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/json.h"
#include "common/json_fields.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal {
namespace {

constexpr char kLineageFile[] = "lineage.json";

}  // namespace

absl::StatusOr<std::unique_ptr<ServingCatalog>> ServingCatalog::Open(
    ServingCatalogOptions options) {
  if (options.signer == nullptr || options.verifier == nullptr) {
    return absl::InvalidArgumentError(
        "serving versions are signed: the serving catalog needs the model-signing key pair");
  }
  SHOAL_ASSIGN_OR_RETURN(ServingStore store,
                         ServingStore::Open({options.dir, options.verifier, options.keep}));
  const std::vector<int64_t> held = store.versions();
  std::vector<int64_t> lineage;
  const std::string path = options.dir + "/" + kLineageFile;
  absl::StatusOr<std::string> text = ReadFile(path, 1 << 20);
  if (text.ok()) {
    JsonLimits limits;
    limits.max_bytes = 1 << 20;
    limits.max_depth = 3;
    absl::StatusOr<nlohmann::json> parsed = ParseJson(*text, path, limits);
    if (!parsed.ok()) return absl::DataLossError(parsed.status().message());
    JsonFields::Context context;
    context.code = absl::StatusCode::kDataLoss;
    context.prefix = absl::StrCat("serving lineage '", path, "': field ");
    context.stored_file = true;
    JsonFields j(*parsed, "", context);
    SHOAL_RETURN_IF_ERROR(j.Require({"format", "lineage"}));
    int64_t format = 0;
    SHOAL_RETURN_IF_ERROR(j.Integer("format", 1, 1, &format));
    const nlohmann::json& list = j.Raw("lineage");
    SHOAL_RETURN_IF_ERROR(j.Finish());
    if (!list.is_array() || list.size() > 100000) {
      return absl::DataLossError(
          absl::StrCat("serving lineage '", path, "': 'lineage' is not a list of versions"));
    }
    for (const nlohmann::json& v : list) {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 ||
          (!lineage.empty() && v.get<int64_t>() <= lineage.back())) {
        return absl::DataLossError(absl::StrCat(
            "serving lineage '", path, "': 'lineage' must list rising versions from 1"));
      }
      // An entry written before a crash stopped its version being stored.
      if (std::binary_search(held.begin(), held.end(), v.get<int64_t>())) {
        lineage.push_back(v.get<int64_t>());
      }
    }
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  if (lineage.empty() && !held.empty()) {
    spdlog::warn("serving catalog '{}': no lineage; rollbacks start from version {}",
                 options.dir, held.back());
    lineage.push_back(held.back());
  }
  std::unique_ptr<ServingCatalog> catalog(
      new ServingCatalog(std::move(options), std::move(store)));
  catalog->lineage_ = std::move(lineage);
  {
    absl::MutexLock lock(&catalog->mu_);
    SHOAL_RETURN_IF_ERROR(catalog->Refresh());
  }
  return catalog;
}

int64_t ServingCatalog::NextVersion() const {
  const std::vector<int64_t> held = store_.versions();
  int64_t newest = held.empty() ? 0 : held.back();
  if (!lineage_.empty()) newest = std::max(newest, lineage_.back());
  return newest + 1;
}

absl::Status ServingCatalog::WriteLineage(const std::vector<int64_t>& lineage) const {
  nlohmann::json j{{"format", 1}, {"lineage", lineage}};
  return WriteFileAtomically(options_.dir + "/" + kLineageFile, j.dump() + "\n");
}

absl::StatusOr<ModelRecord> ServingCatalog::Add(ModelRecord record, const std::string& payload,
                                                const ModelCode& code,
                                                std::vector<int64_t> lineage) {
  SHOAL_ASSIGN_OR_RETURN(SignedModel signed_model, SignedModelOf(record, Sha256(payload)));
  SHOAL_ASSIGN_OR_RETURN(record.signature, options_.signer->Sign(signed_model));
  lineage.push_back(record.version);
  SHOAL_RETURN_IF_ERROR(WriteLineage(lineage));  // before the version it names
  SHOAL_RETURN_IF_ERROR(store_.Install(record, payload, code));
  lineage_ = std::move(lineage);
  SHOAL_RETURN_IF_ERROR(Refresh());
  return ReadModelRecord(options_.dir, record.version);
}

absl::StatusOr<ModelRecord> ServingCatalog::Promote(const std::string& run,
                                                    const std::string& run_models_dir,
                                                    int64_t version) {
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateRunId(run), "promote"));
  absl::StatusOr<LoadedModelVersion> trained =
      LoadModelVersion(run_models_dir, version, options_.verifier.get(), ModelKind::kTraining);
  if (absl::IsNotFound(trained.status())) {
    return absl::NotFoundError(absl::StrCat(
        "run '", run, "' has no ",
        version == kLatestVersion ? "model" : absl::StrCat("model version ", version), " (",
        trained.status().message(), ")"));
  }
  SHOAL_RETURN_IF_ERROR(trained.status());
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadModelPayload(run_models_dir, trained->record));
  absl::StatusOr<ModelRecord> added = PromoteLoaded(run, *trained, payload);
  if (added.ok()) NotifyChanged();
  return added;
}

absl::StatusOr<ModelRecord> ServingCatalog::PromoteLoaded(const std::string& run,
                                                          const LoadedModelVersion& trained_version,
                                                          const std::string& payload) {
  const LoadedModelVersion* trained = &trained_version;
  absl::MutexLock lock(&mu_);
  ModelRecord record;
  record.version = NextVersion();
  record.model_spec = trained->record.model_spec;
  record.code_sha256_hex = trained->record.code_sha256_hex;
  record.metrics = trained->record.metrics;
  record.serving = ServingOrigin{run, trained->record.version};
  SHOAL_ASSIGN_OR_RETURN(ModelRecord added, Add(record, payload, trained->code, lineage_));
  spdlog::info("serving version {}: run '{}' version {} promoted", added.version, run,
               trained->record.version);
  return added;
}

absl::StatusOr<ModelRecord> ServingCatalog::Rollback() {
  absl::StatusOr<ModelRecord> added = RollbackLocked();
  if (added.ok()) NotifyChanged();
  return added;
}

absl::StatusOr<ModelRecord> ServingCatalog::RollbackLocked() {
  absl::MutexLock lock(&mu_);
  if (lineage_.size() < 2) {
    return absl::FailedPreconditionError(
        lineage_.empty() ? "nothing to roll back: no serving version yet"
                         : absl::StrCat("nothing to roll back to: serving version ",
                                        lineage_.back(), " is the first of its lineage"));
  }
  const int64_t target = lineage_[lineage_.size() - 2];
  absl::StatusOr<LoadedModelVersion> old =
      LoadModelVersion(options_.dir, target, options_.verifier.get(), ModelKind::kServing);
  if (absl::IsNotFound(old.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "serving version ", target, " is no longer kept (the catalog keeps ", options_.keep,
        " older versions); promote its run's version again instead"));
  }
  SHOAL_RETURN_IF_ERROR(old.status());
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadModelPayload(options_.dir, old->record));
  ModelRecord record = old->record;
  record.version = NextVersion();
  record.signature.clear();
  std::vector<int64_t> lineage(lineage_.begin(), lineage_.end() - 2);
  SHOAL_ASSIGN_OR_RETURN(ModelRecord added,
                         Add(std::move(record), payload, old->code, std::move(lineage)));
  spdlog::info("serving version {}: rolled back to serving version {} (run '{}' version {})",
               added.version, target, added.serving->run, added.serving->training_version);
  return added;
}

absl::StatusOr<const ServingCatalog::Described*> ServingCatalog::Describe(
    int64_t version) const {
  if (auto it = described_.find(version); it != described_.end()) return &it->second;
  absl::StatusOr<LoadedModelVersion> loaded =
      LoadModelVersion(options_.dir, version, options_.verifier.get(), ModelKind::kServing);
  if (absl::IsNotFound(loaded.status())) {
    return absl::NotFoundError(absl::StrCat("no serving version ", version, " is kept"));
  }
  SHOAL_RETURN_IF_ERROR(loaded.status());
  const ModelRecord& r = loaded->record;
  SHOAL_ASSIGN_OR_RETURN(std::string payload, ReadModelPayload(options_.dir, r));
  Described d;
  d.payload = std::make_shared<const ChunkedPayload>(std::move(payload));
  SHOAL_ASSIGN_OR_RETURN(SignedModel signed_model,
                         SignedModelOf(r, d.payload->header().sha256()));
  d.offer.set_version(r.version);
  d.offer.set_sha256(d.payload->header().sha256());
  d.offer.set_size_bytes(d.payload->header().total_bytes());
  d.offer.set_signature(r.signature);
  d.offer.set_model_spec(signed_model.spec);
  d.offer.set_code_sha256(signed_model.code_sha256);
  d.offer.set_code_size_bytes(loaded->code.torchscript.size());
  d.offer.mutable_serving()->set_run(r.serving->run);
  d.offer.mutable_serving()->set_training_version(r.serving->training_version);
  return &described_.emplace(version, std::move(d)).first->second;
}

absl::Status ServingCatalog::Refresh() {
  const std::vector<int64_t> held = store_.versions();
  for (auto it = described_.begin(); it != described_.end();) {
    it = std::binary_search(held.begin(), held.end(), it->first) ? std::next(it)
                                                                 : described_.erase(it);
  }
  newest_ = 0;
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    absl::StatusOr<const Described*> d = Describe(*it);
    if (d.ok()) {
      newest_ = *it;
      return absl::OkStatus();
    }
    spdlog::warn("serving catalog '{}': serving version {} skipped: {}", options_.dir, *it,
                 std::string(d.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ChunkedPayload>> ServingCatalog::Payload(
    int64_t version) const {
  absl::MutexLock lock(&mu_);
  if (version == kLatestVersion) version = newest_;
  SHOAL_ASSIGN_OR_RETURN(const Described* d, Describe(version));
  return d->payload;
}

absl::StatusOr<std::shared_ptr<const ChunkedPayload>> ServingCatalog::Code(
    const std::string& sha256) const {
  if (sha256.size() != 32) return absl::NotFoundError("no such serving code");
  absl::StatusOr<std::string> bytes = ReadModelCodeFile(options_.dir, HexEncode(sha256));
  if (!bytes.ok()) return absl::NotFoundError("no serving version runs that code");
  return std::make_shared<const ChunkedPayload>(*std::move(bytes));
}

std::optional<v1::ModelVersion> ServingCatalog::Offer() const {
  absl::MutexLock lock(&mu_);
  if (newest_ == 0) return std::nullopt;
  absl::StatusOr<const Described*> d = Describe(newest_);
  if (!d.ok()) return std::nullopt;
  return (*d)->offer;
}

absl::StatusOr<v1::ModelVersion> ServingCatalog::OfferOf(int64_t version) const {
  absl::MutexLock lock(&mu_);
  SHOAL_ASSIGN_OR_RETURN(const Described* d, Describe(version));
  return d->offer;
}

std::optional<ModelRecord> ServingCatalog::Current() const {
  absl::MutexLock lock(&mu_);
  const std::vector<int64_t> held = store_.versions();
  if (held.empty()) return std::nullopt;
  absl::StatusOr<ModelRecord> record = ReadModelRecord(options_.dir, held.back());
  if (!record.ok()) return std::nullopt;
  return *std::move(record);
}

int ServingCatalog::Listen(std::function<void()> changed) const {
  absl::MutexLock lock(&listeners_mu_);
  listeners_[next_listener_] = std::move(changed);
  return next_listener_++;
}

void ServingCatalog::Unlisten(int id) const {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

void ServingCatalog::NotifyChanged() const {
  absl::MutexLock lock(&listeners_mu_);
  for (const auto& [id, changed] : listeners_) changed();
}

std::vector<int64_t> ServingCatalog::Lineage() const {
  absl::MutexLock lock(&mu_);
  return lineage_;
}

absl::StatusOr<LoadedModelVersion> ServingCatalog::Load(int64_t version) const {
  absl::MutexLock lock(&mu_);
  if (version == kLatestVersion) {
    const std::vector<int64_t> held = store_.versions();
    if (held.empty()) return absl::NotFoundError("no serving version yet");
    version = held.back();
  }
  return LoadModelVersion(options_.dir, version, options_.verifier.get(), ModelKind::kServing);
}

}  // namespace shoal
