#include "client/serving_runtime.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/model_dir.h"
#include "common/sha256.h"
#include "common/status.h"

namespace shoal::client {

absl::StatusOr<std::unique_ptr<ServingRuntime>> ServingRuntime::Open(
    ServingRuntimeOptions options, std::shared_ptr<const ExampleSource> holdout) {
  SHOAL_ASSIGN_OR_RETURN(ServingStore store, ServingStore::Open(options.store));
  TrainerOptions trainer_options;
  trainer_options.task = options.task;
  SHOAL_ASSIGN_OR_RETURN(Trainer trainer, Trainer::Create(trainer_options));
  std::unique_ptr<ServingRuntime> runtime(
      new ServingRuntime(std::move(options), std::move(store), std::move(trainer),
                         std::move(holdout)));
  SHOAL_ASSIGN_OR_RETURN(std::optional<LoadedModelVersion> newest,
                         runtime->store_.LoadNewest(&runtime->skipped_at_open_));
  for (const std::string& why : runtime->skipped_at_open_) {
    spdlog::warn("serving store '{}': skipped {}", runtime->store_.dir(), why);
  }
  if (newest) {
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                           runtime->Build(newest->code, newest->params));
    SHOAL_RETURN_IF_ERROR(runtime->serving_.Install(std::move(model), newest->record));
    runtime->current_code_ = newest->code;
    runtime->current_params_ = std::move(newest->params);
    spdlog::info("serving version {} from disk (run '{}', training version {})",
                 newest->record.version, newest->record.serving->run,
                 newest->record.serving->training_version);
  }
  return runtime;
}

absl::StatusOr<std::unique_ptr<Model>> ServingRuntime::Build(const ModelCode& code,
                                                             const Parameters& params) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, CreateModelFromCode(code));
  SHOAL_RETURN_IF_ERROR(
      model->SetParameters(options_.personalize ? options_.personalize(params) : params));
  return model;
}

int64_t ServingRuntime::version() const {
  std::optional<ModelRecord> current = serving_.current();
  return current ? current->version : 0;
}

std::optional<int64_t> ServingRuntime::ServedBefore(const std::string& payload,
                                                    const ModelCode& code) const {
  const std::string sha = HexEncode(Sha256(payload));
  const std::string code_sha = code.torchscript.empty() ? "" : HexEncode(Sha256(code.torchscript));
  for (int64_t held : ListModelVersions(options_.store.dir)) {
    absl::StatusOr<ModelRecord> record = ReadModelRecord(options_.store.dir, held);
    if (record.ok() && record->sha256_hex == sha && record->model_spec == code.spec &&
        record->code_sha256_hex == code_sha) {
      return held;
    }
  }
  return std::nullopt;
}

absl::StatusOr<OfferOutcome> ServingRuntime::Offer(const ModelRecord& record,
                                                   const std::string& payload,
                                                   const ModelCode& code) {
  if (auto it = refused_.find(record.version); it != refused_.end()) return it->second;
  // Nothing of the offer runs before its signature is checked.
  SHOAL_RETURN_IF_ERROR(store_.Verify(record, payload, code));
  const std::string what = absl::StrCat("serving version ", record.version);
  SHOAL_ASSIGN_OR_RETURN(Parameters params,
                         Annotate(ParseParameters(payload), what));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> candidate,
                         Annotate(Build(code, params), what));
  OfferOutcome outcome;
  outcome.version = record.version;
  if (holdout_ == nullptr || holdout_->size() == 0) {
    outcome.reason = "no held-out data on this device to judge it by; accepted unjudged";
  } else if (std::optional<int64_t> before = ServedBefore(payload, code)) {
    // A rollback brings back weights this device judged and served before.
    outcome.reason = absl::StrCat("the same model as serving version ", *before,
                                  ", which this device served before (a rollback); "
                                  "accepted without judging it again");
  } else {
    std::unique_ptr<Model> current;
    if (version() > 0) {
      SHOAL_ASSIGN_OR_RETURN(current, Build(current_code_, current_params_));
    }
    // Judged on models of their own: the serving one is in use.
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> judged, Build(code, params));
    SHOAL_ASSIGN_OR_RETURN(GuardVerdict verdict,
                           Annotate(GuardServing(trainer_, *holdout_, *judged, current.get(),
                                                 options_.guard),
                                    what));
    outcome.reason = verdict.reason;
    outcome.verdict = std::move(verdict);
    if (!outcome.verdict->accept) {
      spdlog::warn("{} refused by the guard: {}", what, outcome.reason);
      refused_[record.version] = outcome;
      return outcome;
    }
  }
  SHOAL_RETURN_IF_ERROR(store_.Install(record, payload, code));
  SHOAL_RETURN_IF_ERROR(serving_.Install(std::move(candidate), record));
  current_code_ = code;
  current_params_ = std::move(params);
  outcome.installed = true;
  spdlog::info("{} serves now: {}", what, outcome.reason);
  return outcome;
}

}  // namespace shoal::client
