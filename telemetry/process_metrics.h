// Series read at scrape time: the process's own figures (from /proc), and
// the helpers for any other figure a collectable reads when scraped.
#ifndef SHOAL_TELEMETRY_PROCESS_METRICS_H_
#define SHOAL_TELEMETRY_PROCESS_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

namespace shoal::telemetry {

// ProcessMetrics returns a collectable with
//   shoal_process_resident_memory_bytes   (gauge, VmRSS)
//   shoal_process_cpu_seconds_total       (counter, user + system)
//   shoal_process_threads                 (gauge)
//   shoal_process_start_time_seconds      (gauge, Unix time, from the boot time)
// Thread-safe; a field /proc does not give is left out, never invented.
std::shared_ptr<prometheus::Collectable> ProcessMetrics();

// OneValueFamily is a family of one unlabelled counter or gauge.
prometheus::MetricFamily OneValueFamily(std::string name, std::string help,
                                        prometheus::MetricType type, double value);

// CollectAtScrape returns a collectable whose families `collect` makes at
// each scrape (from any of the endpoint's threads: it must be thread-safe).
std::shared_ptr<prometheus::Collectable> CollectAtScrape(
    std::function<std::vector<prometheus::MetricFamily>()> collect);

}  // namespace shoal::telemetry

#endif  // SHOAL_TELEMETRY_PROCESS_METRICS_H_
