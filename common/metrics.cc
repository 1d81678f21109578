#include "common/metrics.h"

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

}  // namespace shoal
