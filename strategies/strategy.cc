#include "strategies/strategy.h"

#include "absl/strings/str_cat.h"

namespace shoal {

absl::StatusOr<EvaluateRes> Strategy::AggregateEvaluate(
    uint32_t round, const std::vector<std::pair<std::string, EvaluateRes>>& results,
    const std::vector<ClientFailure>& failures) {
  int64_t total = 0;
  for (const auto& [id, res] : results) total += res.num_examples;
  if (total <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", round, ": no evaluation results with examples (",
        failures.size(), " failures)"));
  }
  EvaluateRes out;
  out.num_examples = total;
  std::map<std::string, double> sums;
  for (const auto& [id, res] : results) {
    const double w = static_cast<double>(res.num_examples) / total;
    out.loss += w * res.loss;
    for (const auto& [name, value] : res.metrics) sums[name] += w * MetricAsDouble(value);
  }
  for (const auto& [name, value] : sums) out.metrics[name] = value;
  return out;
}

absl::Status Strategy::LoadState(const Parameters& state) {
  if (state.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "strategy '", name(), "' keeps no state, but the checkpoint holds ", state.size(),
      " state tensor(s), starting with '", state.name(0), "'"));
}

std::optional<absl::StatusOr<EvaluateRes>> Strategy::EvaluateGlobal(
    uint32_t round, const Parameters& params) {
  if (!server_evaluator_) return std::nullopt;
  return server_evaluator_(params);
}

}  // namespace shoal
