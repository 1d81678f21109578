#include "common/metrics.h"

#include <cmath>

#include "absl/strings/match.h"

namespace shoal {

double MetricAsDouble(const MetricValue& value) {
  if (const int64_t* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  return std::get<double>(value);
}

void MetricsToProto(const Metrics& metrics,
                    google::protobuf::Map<std::string, v1::MetricValue>* proto) {
  proto->clear();
  for (const auto& [name, value] : metrics) {
    v1::MetricValue& out = (*proto)[name];
    if (const int64_t* i = std::get_if<int64_t>(&value)) {
      out.set_int_value(*i);
    } else {
      out.set_double_value(std::get<double>(value));
    }
  }
}

Metrics MetricsFromProto(
    const google::protobuf::Map<std::string, v1::MetricValue>& proto) {
  Metrics metrics;
  for (const auto& [name, value] : proto) {
    switch (value.kind_case()) {
      case v1::MetricValue::kIntValue:
        metrics[name] = value.int_value();
        break;
      case v1::MetricValue::kDoubleValue:
        metrics[name] = value.double_value();
        break;
      default:
        break;
    }
  }
  return metrics;
}

void DeriveFromPooled(Metrics* metrics) {
  auto pooled = [&](const char* what, double* out) {
    auto it = metrics->find(std::string(kPooledPrefix) + what);
    if (it == metrics->end()) return false;
    *out = MetricAsDouble(it->second);
    return std::isfinite(*out);
  };
  double mse = 0, mean = 0, sq_mean = 0;
  if (pooled("mse", &mse) && mse >= 0) {
    (*metrics)["rmse"] = std::sqrt(mse);
    // R² = 1 - SSE / SST, SST about the pooled targets' own mean.
    if (pooled("target_mean", &mean) && pooled("target_sq_mean", &sq_mean)) {
      const double variance = sq_mean - mean * mean;
      if (variance > 0) (*metrics)["r2"] = 1.0 - mse / variance;
    }
  }
  for (auto it = metrics->begin(); it != metrics->end();) {
    it = absl::StartsWith(it->first, kPooledPrefix) ? metrics->erase(it) : std::next(it);
  }
}

}  // namespace shoal
