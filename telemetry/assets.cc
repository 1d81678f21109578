#include "telemetry/assets.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace shoal::telemetry {

absl::StatusOr<std::string> ReadChartJs(const std::string& path) {
  absl::StatusOr<std::string> js = ReadFile(path, 4 << 20);
  if (absl::IsNotFound(js.status())) {
    return absl::NotFoundError(absl::StrCat(
        "Shoal's charts need Chart.js at ", path, ": install libjs-chart.js"));
  }
  return js;
}

}  // namespace shoal::telemetry
