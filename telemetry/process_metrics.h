// The process's own figures for Prometheus, read from /proc at each scrape:
// resident memory, CPU time, threads and start time.
#ifndef SHOAL_TELEMETRY_PROCESS_METRICS_H_
#define SHOAL_TELEMETRY_PROCESS_METRICS_H_

#include <memory>

#include <prometheus/collectable.h>

namespace shoal::telemetry {

// ProcessMetrics returns a collectable with
//   shoal_process_resident_memory_bytes   (gauge, VmRSS)
//   shoal_process_cpu_seconds_total       (counter, user + system)
//   shoal_process_threads                 (gauge)
//   shoal_process_start_time_seconds      (gauge, Unix time, from the boot time)
// Thread-safe; a field /proc does not give is left out, never invented.
std::shared_ptr<prometheus::Collectable> ProcessMetrics();

}  // namespace shoal::telemetry

#endif  // SHOAL_TELEMETRY_PROCESS_METRICS_H_
