#include "telemetry/process_metrics.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace shoal::telemetry {
namespace {

std::string ReadSmall(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str().substr(0, 1 << 16);
}

class Process final : public prometheus::Collectable {
 public:
  Process() {
    for (absl::string_view line : absl::StrSplit(ReadSmall("/proc/stat"), '\n')) {
      if (absl::ConsumePrefix(&line, "btime ")) absl::SimpleAtod(line, &boot_);
    }
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    // /proc/self/status: "VmRSS:   123456 kB", "Threads:  12".
    for (absl::string_view line : absl::StrSplit(ReadSmall("/proc/self/status"), '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (f.size() < 2) continue;
      double value = 0;
      if (f[0] == "VmRSS:" && absl::SimpleAtod(f[1], &value)) {
        out.push_back(OneValueFamily("shoal_process_resident_memory_bytes",
                             "Resident memory of the process", prometheus::MetricType::Gauge,
                             value * 1024));
      } else if (f[0] == "Threads:" && absl::SimpleAtod(f[1], &value)) {
        out.push_back(OneValueFamily("shoal_process_threads", "Threads of the process",
                             prometheus::MetricType::Gauge, value));
      }
    }
    // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks,
    // counted after the command name's closing parenthesis.
    const std::string stat = ReadSmall("/proc/self/stat");
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos) {
      std::vector<absl::string_view> f =
          absl::StrSplit(absl::string_view(stat).substr(paren + 1), ' ', absl::SkipEmpty());
      double utime = 0, stime = 0, started = 0;
      const long ticks = sysconf(_SC_CLK_TCK);
      if (f.size() > 12 && ticks > 0 && absl::SimpleAtod(f[11], &utime) &&
          absl::SimpleAtod(f[12], &stime)) {
        out.push_back(OneValueFamily("shoal_process_cpu_seconds_total",
                             "User and system CPU time of the process",
                             prometheus::MetricType::Counter,
                             (utime + stime) / static_cast<double>(ticks)));
      }
      // Field 22, starttime: clock ticks after boot; boot is /proc/stat's btime.
      if (f.size() > 19 && ticks > 0 && boot_ > 0 && absl::SimpleAtod(f[19], &started)) {
        out.push_back(OneValueFamily("shoal_process_start_time_seconds",
                             "When the process started, Unix time",
                             prometheus::MetricType::Gauge,
                             boot_ + started / static_cast<double>(ticks)));
      }
    }
    return out;
  }

 private:
  double boot_ = 0;  // Unix time of the boot
};

class AtScrape final : public prometheus::Collectable {
 public:
  explicit AtScrape(std::function<std::vector<prometheus::MetricFamily>()> collect)
      : collect_(std::move(collect)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return collect_(); }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> collect_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> ProcessMetrics() { return std::make_shared<Process>(); }

prometheus::MetricFamily OneValueFamily(std::string name, std::string help,
                                        prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

std::shared_ptr<prometheus::Collectable> CollectAtScrape(
    std::function<std::vector<prometheus::MetricFamily>()> collect) {
  return std::make_shared<AtScrape>(std::move(collect));
}

}  // namespace shoal::telemetry
