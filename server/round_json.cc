#include "server/round_json.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "common/status.h"

namespace shoal {
namespace {

using nlohmann::json;

// Non-finite doubles become null in JSON and NaN again when read.
json Number(double d) { return std::isfinite(d) ? json(d) : json(nullptr); }

json EvaluateToJson(const std::optional<EvaluateRes>& res) {
  if (!res) return nullptr;
  return {{"num_examples", res->num_examples},
          {"loss", Number(res->loss)},
          {"metrics", MetricsToJson(res->metrics)}};
}

absl::Status EvaluateFromJson(JsonFields& round, const std::string& key,
                              std::optional<EvaluateRes>* out) {
  SHOAL_RETURN_IF_ERROR(round.Require({key}));
  if (round.IsNull(key)) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields e, round.Object(key));
  SHOAL_RETURN_IF_ERROR(e.Require({"num_examples", "loss", "metrics"}));
  EvaluateRes res;
  SHOAL_RETURN_IF_ERROR(
      e.Integer("num_examples", 0, std::numeric_limits<int64_t>::max(), &res.num_examples));
  SHOAL_RETURN_IF_ERROR(e.NumberOrNan("loss", &res.loss));
  SHOAL_RETURN_IF_ERROR(e.Metrics("metrics", &res.metrics));
  *out = std::move(res);
  return absl::OkStatus();
}

}  // namespace

double EvaluateAccuracy(const EvaluateRes& res) {
  auto it = res.metrics.find("accuracy");
  return it == res.metrics.end() ? NAN : MetricAsDouble(it->second);
}

json RoundRecordToJson(const RoundRecord& r) {
  json failures = json::array();
  for (const ClientFailure& f : r.failures) {
    failures.push_back({{"client", f.client_id},
                        {"code", static_cast<int>(f.status.code())},
                        {"error", std::string(f.status.message())}});
  }
  json declined = json::array();
  for (const ClientFailure& d : r.declined) {
    declined.push_back({{"client", d.client_id}, {"reason", DeclinedReason(d.status)}});
  }
  auto loss = [](const std::optional<EvaluateRes>& e) {
    return e ? Number(e->loss) : json(nullptr);
  };
  auto accuracy = [](const std::optional<EvaluateRes>& e) {
    return e ? Number(EvaluateAccuracy(*e)) : json(nullptr);
  };
  return {{"round", r.round},
          {"sampled", r.sampled},
          {"answered", r.answered},
          {"failed", r.failures.size()},
          {"failures", failures},
          {"declined", declined},
          {"model_updated", r.model_updated},
          {"model_version", r.model_version},
          {"train_loss", Number(r.train_loss)},
          {"train_examples", r.train_examples},
          {"upload_bytes", r.upload_bytes},
          {"server_eval", EvaluateToJson(r.server_eval)},
          {"federated_eval", EvaluateToJson(r.federated_eval)},
          {"test_loss", loss(r.server_eval)},
          {"test_accuracy", accuracy(r.server_eval)},
          {"federated_loss", loss(r.federated_eval)},
          {"federated_accuracy", accuracy(r.federated_eval)},
          {"seconds", r.seconds},
          {"aggregate_seconds", r.aggregate_seconds},
          {"evaluate_seconds", r.evaluate_seconds},
          {"note", r.note},
          {"strategy_metrics", MetricsToJson(r.strategy_metrics)},
          {"secure_aggregation", MetricsToJson(r.secagg)}};
}

absl::StatusOr<RoundRecord> RoundRecordFromJson(JsonFields& j) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // Format 1 named these "secagg" and a failure's error "message".
  const char* secagg = j.Has("secure_aggregation") ? "secure_aggregation" : "secagg";
  SHOAL_RETURN_IF_ERROR(
      j.Require({"round", "sampled", "answered", "failures", "model_updated", "model_version",
                 "train_loss", "train_examples", "seconds", "note", "strategy_metrics", secagg}));
  RoundRecord r;
  SHOAL_RETURN_IF_ERROR(j.Integer("round", 0, kMaxRounds, &r.round));
  SHOAL_RETURN_IF_ERROR(j.Integer("sampled", 0, kMax, &r.sampled));
  SHOAL_RETURN_IF_ERROR(j.Integer("answered", 0, kMax, &r.answered));
  SHOAL_ASSIGN_OR_RETURN(std::vector<JsonFields> failures, j.Objects("failures"));
  for (JsonFields& f : failures) {
    const char* error = f.Has("error") ? "error" : "message";
    SHOAL_RETURN_IF_ERROR(f.Require({"client", "code", error}));
    ClientFailure failure;
    int code = 0;
    std::string message;
    SHOAL_RETURN_IF_ERROR(f.String("client", &failure.client_id));
    SHOAL_RETURN_IF_ERROR(f.Integer("code", 1, 16, &code));
    SHOAL_RETURN_IF_ERROR(f.String(error, &message));
    failure.status = absl::Status(static_cast<absl::StatusCode>(code), message);
    r.failures.push_back(std::move(failure));
  }
  // Optional: histories written before devices could decline.
  if (j.Has("declined")) {
    SHOAL_ASSIGN_OR_RETURN(std::vector<JsonFields> declined, j.Objects("declined"));
    for (JsonFields& d : declined) {
      SHOAL_RETURN_IF_ERROR(d.Require({"client", "reason"}));
      ClientFailure decline;
      std::string reason;
      SHOAL_RETURN_IF_ERROR(d.String("client", &decline.client_id));
      SHOAL_RETURN_IF_ERROR(d.String("reason", &reason));
      decline.status = DeclinedError(reason);
      r.declined.push_back(std::move(decline));
    }
  }
  SHOAL_RETURN_IF_ERROR(j.Bool("model_updated", &r.model_updated));
  SHOAL_RETURN_IF_ERROR(j.Integer("model_version", 0, kMax, &r.model_version));
  SHOAL_RETURN_IF_ERROR(j.NumberOrNan("train_loss", &r.train_loss));
  SHOAL_RETURN_IF_ERROR(j.Integer("train_examples", 0, kMax, &r.train_examples));
  // Optional: checkpoints written before it was counted.
  SHOAL_RETURN_IF_ERROR(j.Integer("upload_bytes", 0, kMax, &r.upload_bytes));
  SHOAL_RETURN_IF_ERROR(EvaluateFromJson(j, "server_eval", &r.server_eval));
  SHOAL_RETURN_IF_ERROR(EvaluateFromJson(j, "federated_eval", &r.federated_eval));
  SHOAL_RETURN_IF_ERROR(j.NumberOrNan("seconds", &r.seconds));
  // Optional: histories written before they were timed.
  SHOAL_RETURN_IF_ERROR(j.Number("aggregate_seconds", 0, 1e9, &r.aggregate_seconds));
  SHOAL_RETURN_IF_ERROR(j.Number("evaluate_seconds", 0, 1e9, &r.evaluate_seconds));
  SHOAL_RETURN_IF_ERROR(j.String("note", &r.note));
  SHOAL_RETURN_IF_ERROR(j.Metrics("strategy_metrics", &r.strategy_metrics));
  SHOAL_RETURN_IF_ERROR(j.Metrics(secagg, &r.secagg));
  return r;
}

}  // namespace shoal
