// Metrics: typed named values reported by clients and the server.
#ifndef SHOAL_COMMON_METRICS_H_
#define SHOAL_COMMON_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>

#include <google/protobuf/map.h>

#include "shoal/v1/shoal.pb.h"

namespace shoal {

using MetricValue = std::variant<int64_t, double>;
// Ordered so that printed and stored metrics are stable.
using Metrics = std::map<std::string, MetricValue>;

double MetricAsDouble(const MetricValue& value);

void MetricsToProto(const Metrics& metrics,
                    google::protobuf::Map<std::string, v1::MetricValue>* proto);
// MetricsFromProto drops values with no kind set.
Metrics MetricsFromProto(
    const google::protobuf::Map<std::string, v1::MetricValue>& proto);

}  // namespace shoal

#endif  // SHOAL_COMMON_METRICS_H_
