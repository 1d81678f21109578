// Shoal's web pages, built into the binary from telemetry/*.html: the live
// dashboard and the run report; and Chart.js, which both draw with, read
// from Debian's libjs-chart.js (shipped with the system, never fetched from
// a CDN).
#ifndef SHOAL_TELEMETRY_ASSETS_H_
#define SHOAL_TELEMETRY_ASSETS_H_

#include <string>

#include "absl/status/statusor.h"

namespace shoal::telemetry {

// Where libjs-chart.js installs Chart.js's UMD build (global `Chart`).
inline constexpr char kChartJsPath[] = "/usr/share/javascript/chart.js/chart.min.js";

// DashboardHtml is the dashboard's page. It loads "chart.js" and polls
// "api/state" (relative: it works behind a path prefix).
const char* DashboardHtml();

// ReportHtml is the page of `shoal report` (experiment/report.h), with two
// markers to replace: {{SHOAL_CHART_JS}} by Chart.js and {{SHOAL_RUNS}} by
// the runs' JSON.
const char* ReportHtml();

// ReadChartJs reads Chart.js from `path`; NotFound naming the package to
// install when it is missing.
absl::StatusOr<std::string> ReadChartJs(const std::string& path = kChartJsPath);

}  // namespace shoal::telemetry

#endif  // SHOAL_TELEMETRY_ASSETS_H_
