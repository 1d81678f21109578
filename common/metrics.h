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

// Pooled means. A client's federated evaluation carries, beside its metrics,
// per-example means named "pooled.<what>" from which the metrics that are not
// means themselves follow (RMSE and R²). The example-weighted mean over
// clients of a per-example mean is the mean over all their examples, so the
// federated RMSE and R² derived from pooled means are those of the union of
// the clients' held-out data; a weighted mean of per-client RMSEs or R²s is
// not. Regression sends "pooled.mse", "pooled.target_mean" and
// "pooled.target_sq_mean" (the last two disclose the mean and spread of the
// client's held-out targets, which its R² and RMSE nearly do already).
inline constexpr char kPooledPrefix[] = "pooled.";

// DeriveFromPooled replaces the "pooled." entries of `metrics` by what they
// give: "rmse" from pooled.mse, "r2" from pooled.mse, pooled.target_mean and
// pooled.target_sq_mean. A derived metric that is undefined (constant
// targets) or impossible (a negative mean square, as a lying client might
// send) is left out rather than set to NaN.
void DeriveFromPooled(Metrics* metrics);

}  // namespace shoal

#endif  // SHOAL_COMMON_METRICS_H_
