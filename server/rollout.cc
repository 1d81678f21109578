#include "server/rollout.h"

#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/cleanup/cleanup.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/status.h"
#include "server/round_json.h"

namespace shoal {

const char* RolloutStageName(RolloutStage stage) {
  switch (stage) {
    case RolloutStage::kNone:
      return "none";
    case RolloutStage::kCanary:
      return "canary";
    case RolloutStage::kComplete:
      return "complete";
    case RolloutStage::kReverted:
      return "reverted";
  }
  return "?";
}

Rollout::Rollout(RolloutOptions options, ServingCatalog* catalog)
    : options_(std::move(options)), catalog_(catalog) {
  absl::MutexLock lock(&mu_);
  // A canary that a restart interrupted goes on from its state file; what
  // the catalog serves otherwise goes to every device.
  if (std::optional<v1::ModelVersion> newest = catalog_->Offer()) {
    if (!Restore(newest->version())) Start(newest->version(), 0, /*canary=*/false);
  }
}

void Rollout::Save() const {
  if (options_.state_file.empty()) return;
  nlohmann::json reports = nlohmann::json::object();
  for (const auto& [id, refused] : reported_) reports[id] = refused;
  const nlohmann::json j{{"format", 1},
                         {"version", status_.version},
                         {"previous", status_.previous},
                         {"stage", RolloutStageName(status_.stage)},
                         {"started_unix_ms", absl::ToUnixMillis(started_)},
                         {"reports", reports},
                         {"change_sum", change_sum_},
                         {"reason", status_.reason}};
  absl::Status written = WriteFileAtomically(options_.state_file, j.dump() + "\n");
  if (!written.ok()) {
    spdlog::warn("cannot keep the rollout's state: {}", std::string(written.message()));
  }
}

bool Rollout::Restore(int64_t newest) {
  if (options_.state_file.empty()) return false;
  absl::StatusOr<std::string> text = ReadFile(options_.state_file, 16 << 20);
  if (!text.ok()) return false;
  absl::StatusOr<nlohmann::json> parsed = ParseJson(*text, options_.state_file);
  auto ignore = [&](const std::string& why) {
    spdlog::warn("rollout state '{}' ignored: {}", options_.state_file, why);
    return false;
  };
  if (!parsed.ok()) return ignore(std::string(parsed.status().message()));
  const nlohmann::json& j = *parsed;
  try {
    if (j.at("format").get<int>() != 1) return ignore("unknown format");
    if (j.at("version").get<int64_t>() != newest) return ignore("about another version");
    const std::string stage = j.at("stage").get<std::string>();
    Start(newest, j.at("previous").get<int64_t>(), stage == "canary");
    if (stage == "reverted") status_.stage = RolloutStage::kReverted;
    started_ = absl::FromUnixMillis(j.at("started_unix_ms").get<int64_t>());
    change_sum_ = j.at("change_sum").get<double>();
    status_.reason = j.at("reason").get<std::string>();
    for (const auto& [id, refused] : j.at("reports").items()) {
      reported_[id] = refused.get<bool>();
      ++status_.canary_reports;
      status_.canary_refusals += refused.get<bool>() ? 1 : 0;
    }
    if (status_.canary_reports > 0) {
      status_.mean_change = change_sum_ / static_cast<double>(status_.canary_reports);
    }
  } catch (const nlohmann::json::exception& e) {
    Start(newest, 0, /*canary=*/false);
    return ignore(e.what());
  }
  if (status_.stage == RolloutStage::kCanary) {
    spdlog::info("serving version {}: canary resumed ({} report(s) so far)", newest,
                 status_.canary_reports);
  }
  return true;
}

void Rollout::Start(int64_t version, int64_t previous, bool canary) {
  status_ = RolloutStatus{};
  status_.version = version;
  status_.previous = previous;
  status_.stage = canary ? RolloutStage::kCanary : RolloutStage::kComplete;
  started_ = options_.clock->Now();
  change_sum_ = 0;
  reported_.clear();
}

absl::StatusOr<ModelRecord> Rollout::Promote(const std::string& run,
                                             const std::string& run_models_dir,
                                             int64_t version) {
  absl::MutexLock lock(&mu_);
  SHOAL_ASSIGN_OR_RETURN(ModelRecord record, catalog_->Promote(run, run_models_dir, version));
  const std::vector<int64_t> lineage = catalog_->Lineage();
  const int64_t previous = lineage.size() >= 2 ? lineage[lineage.size() - 2] : 0;
  const bool canary =
      previous > 0 && options_.canary_fraction > 0 && options_.canary_fraction < 1;
  Start(record.version, previous, canary);
  Save();
  if (canary) {
    spdlog::info("serving version {}: canary on {:.0f}% of devices; the others keep {}",
                 record.version, 100 * options_.canary_fraction, previous);
  }
  return record;
}

absl::StatusOr<ModelRecord> Rollout::Rollback() {
  absl::MutexLock lock(&mu_);
  SHOAL_ASSIGN_OR_RETURN(ModelRecord record, catalog_->Rollback());
  Start(record.version, 0, /*canary=*/false);
  status_.reason = "rolled back by hand";
  Save();
  return record;
}

bool Rollout::IsCanary(const std::string& client_id, int64_t version) const {
  const std::string digest = Sha256(absl::StrCat(client_id, "\n", version));
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | static_cast<unsigned char>(digest[i]);
  return static_cast<double>(x) / 18446744073709551616.0 < options_.canary_fraction;
}

std::optional<v1::ModelVersion> Rollout::OfferFor(const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  Decide();
  if (status_.stage == RolloutStage::kNone) return std::nullopt;
  const int64_t version =
      status_.stage == RolloutStage::kCanary && !IsCanary(client_id, status_.version)
          ? status_.previous
          : status_.version;
  absl::StatusOr<v1::ModelVersion> offer = catalog_->OfferOf(version);
  if (!offer.ok()) return std::nullopt;
  return *std::move(offer);
}

void Rollout::Report(const std::string& client_id, const v1::ServingReport& report) {
  absl::MutexLock lock(&mu_);
  if (status_.stage != RolloutStage::kCanary || report.offered_version() != status_.version ||
      !IsCanary(client_id, status_.version) || reported_.count(client_id) > 0) {
    return;
  }
  const bool refused = !report.accepted();
  reported_[client_id] = refused;
  ++status_.canary_reports;
  status_.canary_refusals += refused ? 1 : 0;
  // Positive is better: accuracy up, RMSE down. No metric (a device with no
  // held-out data accepted unjudged) counts as no change.
  double change = report.offered_value() - report.current_value();
  if (report.metric() == "rmse") change = -change;
  if (report.metric().empty()) change = 0;
  change_sum_ += change;
  status_.mean_change = change_sum_ / static_cast<double>(status_.canary_reports);
  Save();
  Decide();
}

void Rollout::Decide() {
  if (status_.stage != RolloutStage::kCanary) return;
  const int64_t reports = status_.canary_reports;
  std::string revert;
  if (reports >= std::max<int64_t>(1, options_.min_canary_reports)) {
    const double refusals = static_cast<double>(status_.canary_refusals) / reports;
    if (refusals > options_.max_canary_refusals) {
      revert = absl::StrFormat("%d of %d canary devices refused it", status_.canary_refusals,
                               reports);
    } else if (status_.mean_change < -options_.margin) {
      revert = absl::StrFormat(
          "on the canary devices' own data it is worse by %.4g on average (margin %.4g)",
          -status_.mean_change, options_.margin);
    } else {
      status_.stage = RolloutStage::kComplete;
      status_.reason = absl::StrFormat(
          "%d canary reports, %d refusals, mean change %+.4g: offered to every device", reports,
          status_.canary_refusals, status_.mean_change);
      spdlog::info("serving version {}: {}", status_.version, status_.reason);
      Save();
      catalog_->NotifyChanged();  // the rest of the fleet is offered it now
      return;
    }
  } else if (options_.clock->Now() - started_ > options_.canary_deadline) {
    revert = absl::StrCat("only ", reports, " canary report(s) by the deadline (",
                          absl::FormatDuration(options_.canary_deadline), ")");
  } else {
    return;
  }
  const int64_t bad = status_.version;
  absl::StatusOr<ModelRecord> back = catalog_->Rollback();
  status_.stage = RolloutStage::kReverted;
  status_.reason = revert;
  // Saved as about the version now offered, so a restart keeps it.
  absl::Cleanup save = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { Save(); };
  if (back.ok()) {
    status_.version = back->version;
    spdlog::warn("serving version {} reverted ({}); every device is offered serving version {}",
                 bad, revert, back->version);
  } else {
    status_.version = status_.previous;
    spdlog::error("serving version {} reverted ({}), but the rollback failed: {}; every device is "
                  "offered serving version {} again",
                  bad, revert, std::string(back.status().message()), status_.previous);
  }
}

AutoPromoter::AutoPromoter(Rollout* rollout, const ServingCatalog* catalog, std::string run,
                           std::string run_models_dir, uint32_t last_round, double margin,
                           double target_accuracy)
    : rollout_(rollout),
      catalog_(catalog),
      run_(std::move(run)),
      models_(std::move(run_models_dir)),
      last_round_(last_round),
      margin_(margin),
      target_accuracy_(target_accuracy) {}

void AutoPromoter::OnRoundEnd(const RoundRecord& record) {
  // The Coordinator ends the run after the round that reaches its target.
  const bool reached_target = target_accuracy_ > 0 && record.server_eval &&
                              EvaluateAccuracy(*record.server_eval) >= target_accuracy_;
  if ((record.round != last_round_ && !reached_target) || !decision_.empty()) return;
  absl::StatusOr<ModelRecord> trained = ReadModelRecord(models_, kLatestVersion);
  if (!trained.ok()) {
    decision_ = absl::StrCat("not promoted: ", trained.status().message());
    spdlog::warn("auto-promotion: {}", decision_);
    return;
  }
  auto metric = [](const Metrics& m, const char* key) -> std::optional<double> {
    auto it = m.find(key);
    if (it == m.end()) return std::nullopt;
    return MetricAsDouble(it->second);
  };
  const bool accuracy = metric(trained->metrics, "test_accuracy").has_value();
  const char* key = accuracy ? "test_accuracy" : "test_rmse";
  const std::optional<double> mine = metric(trained->metrics, key);
  const std::optional<ModelRecord> serving = catalog_->Current();
  std::optional<double> theirs;
  if (serving) theirs = metric(serving->metrics, key);
  if (!mine) {
    decision_ = absl::StrCat("not promoted: model version ", trained->version,
                             " has no server-side evaluation to judge it by");
  } else if (serving && !theirs) {
    decision_ = absl::StrCat("not promoted: serving version ", serving->version, " has no ", key,
                             " to compare with; promote by hand");
  } else if (serving && (accuracy ? *mine - *theirs : *theirs - *mine) < margin_) {
    decision_ = absl::StrFormat(
        "not promoted: %s %.4g against %.4g of serving version %d, not better by the margin %.4g",
        key, *mine, *theirs, serving->version, margin_);
  } else {
    absl::StatusOr<ModelRecord> promoted = rollout_->Promote(run_, models_, trained->version);
    decision_ = promoted.ok()
                    ? absl::StrFormat("promoted model version %d as serving version %d (%s %.4g%s)",
                                      trained->version, promoted->version, key, *mine,
                                      serving ? absl::StrFormat(" against %.4g", *theirs) : "")
                    : absl::StrCat("not promoted: ", promoted.status().message());
  }
  spdlog::info("auto-promotion: {}", decision_);
}

RolloutStatus Rollout::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace shoal
