#include "experiment/progress_reporter.h"

#include <cmath>
#include <set>
#include <sstream>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "common/logging.h"
#include "common/status.h"
#include "server/round_json.h"

namespace shoal {
namespace {

using nlohmann::json;

// " | name value" pairs for the progress line, e.g. " | dp_epsilon 1.23".
std::string MetricsText(const Metrics& metrics) {
  std::string out;
  for (const auto& [k, v] : metrics) {
    absl::StrAppend(&out, " | ", k, " ", absl::StrFormat("%.4g", MetricAsDouble(v)));
  }
  return out;
}

// SecAggText: " | secagg k 38 t 20 | survivors 100/100/97/97" (after the
// key, share, masked-input and unmasking stages); empty without it.
std::string SecAggText(const Metrics& m) {
  if (m.empty()) return "";
  auto get = [&](const char* key) -> std::string {
    auto it = m.find(key);
    return it == m.end() ? "-" : absl::StrCat(static_cast<int64_t>(MetricAsDouble(it->second)));
  };
  return absl::StrCat(" | secagg k ", get("secagg_degree"), " t ", get("secagg_threshold"),
                      ", survivors ", get("secagg_keys"), "/", get("secagg_shares"), "/",
                      get("secagg_masked"), "/", get("secagg_unmasked"));
}

// Duration formats seconds for people: "42 s", "3.5 min", "2.1 h".
std::string Duration(double s) {
  if (s < 120) return absl::StrFormat("%.0f s", s);
  if (s < 7200) return absl::StrFormat("%.1f min", s / 60);
  return absl::StrFormat("%.1f h", s / 3600);
}

// The union of the keys of `field` over the rounds: extra CSV columns.
std::set<std::string> Keys(const json& rounds, const std::string& field) {
  std::set<std::string> keys;
  for (const json& r : rounds) {
    if (!r.contains(field)) continue;
    for (const auto& [k, v] : r[field].items()) keys.insert(k);
  }
  return keys;
}

// EvalText describes an evaluation for the progress line: its loss (when
// `with_loss`) and the task's metrics, e.g. "test loss 0.3515, test
// accuracy 86.95%" or "test loss 2.1, test mae 1.02, test rmse 1.45, test
// r2 0.61".
std::string EvalText(const std::string& who, const EvaluateRes& res, bool with_loss) {
  std::vector<std::string> parts;
  if (with_loss) parts.push_back(absl::StrFormat("%s loss %.4f", who, res.loss));
  for (const auto& [name, value] : res.metrics) {
    const double v = MetricAsDouble(value);
    parts.push_back(name == "accuracy" ? absl::StrFormat("%s accuracy %.2f%%", who, 100 * v)
                                       : absl::StrFormat("%s %s %.4g", who, name, v));
  }
  if (parts.empty()) return absl::StrCat(who, " accuracy n/a");
  return absl::StrJoin(parts, ", ");
}

}  // namespace

double Accuracy(const EvaluateRes& res) { return EvaluateAccuracy(res); }

ProgressReporter::ProgressReporter(const ExperimentConfig& config, std::string output_dir)
    : config_(config),
      dir_(std::move(output_dir)),
      start_(real_clock_->Now()),
      round_real_start_(start_) {}

void ProgressReporter::OnRoundStart(uint32_t round, size_t sampled) {
  spdlog::info("round {}/{}: asked {} client(s)", round, config_.coordinator.num_rounds, sampled);
}

void ProgressReporter::OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                                     size_t asked) {
  spdlog::info("round {}/{}: secure aggregation '{}': {}/{} clients still in", round,
               config_.coordinator.num_rounds, stage, answered, asked);
}

void ProgressReporter::OnRoundEnd(const RoundRecord& r) {
  // A round's real time runs from the end of the one before: waiting for
  // and sampling clients included.
  const absl::Time now = real_clock_->Now();
  const double real_s = absl::ToDoubleSeconds(now - round_real_start_);
  round_real_start_ = now;
  std::string eval = "test accuracy n/a";
  if (r.server_eval) eval = EvalText("test", *r.server_eval, /*with_loss=*/true);
  json record = ToJson(r);
  // The real time, whatever clock the rounds run on: `shoal report` plots
  // accuracy against it.
  record["real_seconds"] = real_s;
  rounds_.push_back(std::move(record));
  if (absl::Status written = Write(); !written.ok()) {
    spdlog::warn("cannot write the metrics history: {}", std::string(written.message()));
  }
  if (r.round == 0) {
    spdlog::info("initial model | {}", eval);
    return;
  }
  if (r.federated_eval) {
    eval += " | " + EvalText("clients'", *r.federated_eval, /*with_loss=*/false);
  }
  round_real_seconds_.push_back(real_s);
  round_real_sum_ += real_s;
  const double pace = round_real_sum_ / static_cast<double>(round_real_seconds_.size());
  const uint32_t left =
      config_.coordinator.num_rounds - std::min(r.round, config_.coordinator.num_rounds);
  const std::string eta = left == 0 ? "" : absl::StrCat(", ETA ", Duration(pace * left));
  Metrics extras = extras_ ? extras_(r.round) : Metrics{};
  std::string upload;
  if (r.upload_bytes > 0 && r.answered > 0) {
    upload = absl::StrFormat(" | upload %.2f MB/client",
                             static_cast<double>(r.upload_bytes) / 1e6 /
                                 static_cast<double>(r.answered));
  }
  const std::string declined =
      r.declined.empty() ? "" : absl::StrCat(" (", r.declined.size(), " declined)");
  spdlog::info(
      "round {}/{} | clients {}/{}{} | train loss {} | {}{}{}{}{} | {:.1f} s{}{}", r.round,
      config_.coordinator.num_rounds, r.answered, r.sampled, declined,
      std::isnan(r.train_loss) ? std::string("n/a") : absl::StrFormat("%.4f", r.train_loss), eval,
      MetricsText(r.strategy_metrics), SecAggText(r.secagg), MetricsText(extras), upload, real_s,
      eta,
      r.model_updated ? "" : " | model unchanged");
  // Thousands of simulated clients may fail in one round: name a few.
  constexpr size_t kMaxFailuresShown = 10;
  for (size_t i = 0; i < r.failures.size() && i < kMaxFailuresShown; ++i) {
    spdlog::warn("round {}: client '{}' failed: {}", r.round, r.failures[i].client_id,
                 std::string(r.failures[i].status.message()));
  }
  if (r.failures.size() > kMaxFailuresShown) {
    spdlog::warn("round {}: ... and {} more failures (all in metrics.json)", r.round,
                 r.failures.size() - kMaxFailuresShown);
  }
  for (size_t i = 0; i < r.declined.size() && i < kMaxFailuresShown; ++i) {
    spdlog::info("round {}: client '{}' declined: {}", r.round, r.declined[i].client_id,
                 DeclinedReason(r.declined[i].status));
  }
}

void ProgressReporter::OnRestored(const std::vector<RoundRecord>& history) {
  round_real_start_ = real_clock_->Now();
  rounds_ = json::array();
  for (const RoundRecord& r : history) rounds_.push_back(ToJson(r));
  if (absl::Status written = Write(); !written.ok()) {
    spdlog::warn("cannot write the metrics history: {}", std::string(written.message()));
  }
}

absl::Status ProgressReporter::Write() {
  json history{{"name", config_.name},
               {"model", client::ModelSpecToString(config_.model)},
               {"strategy", config_.strategy},
               {"seed", config_.seed},
               {"elapsed_seconds", absl::ToDoubleSeconds(real_clock_->Now() - start_)}};
  for (const auto& [k, v] : info_.items()) history[k] = v;
  history["rounds"] = rounds_;
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir_ + "/metrics.json", history.dump(2) + "\n"));
  // Strategy metrics (e.g. the privacy spent) and the extras become extra
  // columns: the union of their names over the rounds, empty where a round
  // has none.
  const std::set<std::string> strategy_keys = Keys(rounds_, "strategy_metrics");
  const std::set<std::string> extra_keys =
      extras_key_.empty() ? std::set<std::string>{} : Keys(rounds_, extras_key_);
  std::ostringstream csv;
  csv << "round,sampled,answered,failed,model_version,train_loss,test_loss,test_accuracy,seconds,"
         "upload_bytes,declined";
  for (const std::string& k : strategy_keys) csv << ',' << k;
  for (const std::string& k : extra_keys) csv << ',' << k;
  csv << '\n';
  auto cell = [&csv](const json& r, const std::string& field, const std::string& k) {
    csv << ',';
    if (r.contains(field) && r[field].contains(k)) csv << r[field][k];
  };
  for (const json& r : rounds_) {
    csv << r["round"] << ',' << r["sampled"] << ',' << r["answered"] << ',' << r["failed"] << ','
        << r["model_version"] << ',' << r["train_loss"] << ',' << r["test_loss"] << ','
        << r["test_accuracy"] << ',' << r["seconds"] << ',' << r["upload_bytes"] << ','
        << (r.contains("declined") ? r["declined"].size() : 0);
    for (const std::string& k : strategy_keys) cell(r, "strategy_metrics", k);
    for (const std::string& k : extra_keys) cell(r, extras_key_, k);
    csv << '\n';
  }
  return WriteFileAtomically(dir_ + "/metrics.csv", csv.str());
}

json ProgressReporter::ToJson(const RoundRecord& r) const {
  json out = RoundRecordToJson(r);
  if (extras_ && r.round > 0) out[extras_key_] = MetricsToJson(extras_(r.round));
  return out;
}

}  // namespace shoal
