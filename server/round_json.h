// The one JSON form of a RoundRecord: the rounds of a checkpoint
// (server/checkpoint.h) and of a run's metrics history (metrics.json) are
// written by RoundRecordToJson, so the two files hold the same fields.
#ifndef SHOAL_SERVER_ROUND_JSON_H_
#define SHOAL_SERVER_ROUND_JSON_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/json_fields.h"
#include "common/types.h"
#include "server/coordinator.h"

namespace shoal {

// EvaluateAccuracy returns the "accuracy" metric of an evaluation, NaN
// without one.
double EvaluateAccuracy(const EvaluateRes& res);

// RoundRecordToJson writes every field of `record`, non-finite numbers as
// null:
//   round, sampled, answered, failed (the count), failures [{client, code,
//   error}], model_updated, model_version, train_loss, train_examples,
//   server_eval and federated_eval ({num_examples, loss, metrics} or null),
//   test_loss, test_accuracy, federated_loss, federated_accuracy (from the
//   evaluations, for plotting), seconds, aggregate_seconds and
//   evaluate_seconds (real compute time), note, strategy_metrics,
//   secure_aggregation (secure aggregation's figures; {} without it).
nlohmann::json RoundRecordToJson(const RoundRecord& record);

// RoundRecordFromJson reads what RoundRecordToJson wrote, and the older
// form of checkpoint format 1 (failures [{client, code, message}], the
// figures under "secagg"). Errors: those of `fields` (missing fields, wrong
// types, a failure code outside 1..16).
absl::StatusOr<RoundRecord> RoundRecordFromJson(JsonFields& fields);

}  // namespace shoal

#endif  // SHOAL_SERVER_ROUND_JSON_H_
