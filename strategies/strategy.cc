#include "strategies/strategy.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal {

absl::Status Strategy::CheckCompression(Compression kind) const {
  if (kind != Compression::kTopK || AggregatesByMean()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "strategy '", name(), "' compares the clients' whole updates, which top-k compression "
      "would skew (the values a client does not send would count as 'no change'); use q8 or "
      "q4, or a strategy that sums the updates"));
}

absl::StatusOr<EvaluateRes> Strategy::AggregateEvaluate(
    uint32_t round, const std::vector<std::pair<std::string, EvaluateRes>>& results,
    const std::vector<ClientFailure>& failures) {
  // Weights in float64, so no count can overflow them; the reported total
  // saturates instead.
  int64_t total = 0;
  double weight_sum = 0;
  for (const auto& [id, res] : results) {
    if (res.num_examples <= 0) continue;
    total = AddExampleCounts(total, res.num_examples);
    weight_sum += static_cast<double>(res.num_examples);
  }
  if (total <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", round, ": no evaluation results with examples (",
        failures.size(), " failures)"));
  }
  EvaluateRes out;
  out.num_examples = total;
  // Each metric is the example-weighted mean over the clients that report
  // it. Pooled means (common/metrics.h) count only when every client sent
  // them; they then replace the mean of the clients' RMSEs and R²s by the
  // exact values over all their examples.
  std::map<std::string, std::pair<double, double>> sums;  // name -> (sum w*x, sum w)
  for (const auto& [id, res] : results) {
    if (res.num_examples <= 0) continue;
    const double w = static_cast<double>(res.num_examples) / weight_sum;
    out.loss += w * res.loss;
    for (const auto& [name, value] : res.metrics) {
      sums[name].first += w * MetricAsDouble(value);
      sums[name].second += w;
    }
  }
  for (const auto& [name, sum] : sums) {
    const bool everyone = sum.second > 1 - 1e-9;
    if (absl::StartsWith(name, kPooledPrefix) && !everyone) continue;
    out.metrics[name] = everyone ? sum.first : sum.first / sum.second;
  }
  DeriveFromPooled(&out.metrics);
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
