// Run reports: `shoal report RUN_DIR...` reads the metrics history of runs
// that have ended (metrics.json, and clients.csv when the run was
// simulated) and writes one self-contained HTML page that compares them:
// accuracy and loss against the round, the wall-clock time and the
// simulated time; upload bytes per round; the DP budget spent; and the
// label distribution of each simulated run's clients. Chart.js is inlined
// from Debian's libjs-chart.js, so the page needs no server and fetches
// nothing.
#ifndef SHOAL_EXPERIMENT_REPORT_H_
#define SHOAL_EXPERIMENT_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal {

// ReportRound is one round of a run as the report plots it; NaN where the
// run has no such figure.
struct ReportRound {
  uint32_t round = 0;
  double test_accuracy = 0, test_loss = 0;  // the server's evaluation
  double federated_accuracy = 0, federated_loss = 0;  // the clients' own
  double train_loss = 0;
  // Real seconds since the run started, at the end of this round: the sum
  // of the rounds' real durations (metrics.json's `real_seconds`, or a
  // real run's `seconds`). NaN for a simulation written before
  // `real_seconds` was recorded.
  double wall_clock_s = 0;
  double sim_clock_s = 0;  // a simulation's simulated clock; NaN otherwise
  int64_t upload_bytes = 0;
  double dp_epsilon = 0;  // strategy_metrics.dp_epsilon
  uint64_t sampled = 0, answered = 0, failed = 0, declined = 0;
};

// ReportRun is one run: where it was read from and what it holds.
struct ReportRun {
  std::string label;  // as given on the command line, trailing '/' dropped
  std::string metrics_path;
  std::string name, strategy, model;
  uint64_t seed = 0;
  std::vector<ReportRound> rounds;  // round 0 (the initial model) first
  bool simulated = false;
  // The first clients' examples per class (clients.csv); empty when the
  // run has none (a real federation: devices keep their data).
  std::vector<std::vector<int64_t>> client_classes;
  uint64_t clients = 0;          // all clients of the simulation
  double mean_tv_distance = -1;  // from 0 (IID) to 1; -1 when unknown
  std::string partitioner;
};

struct ReportOptions {
  std::string title = "Shoal runs";
  // Clients drawn in each run's label-distribution chart.
  int max_clients = 50;
  std::string chart_js_path;  // empty: Debian's libjs-chart.js
};

// Bounds on what a report reads, beyond which the input is refused.
inline constexpr size_t kMaxReportRuns = 32;
inline constexpr size_t kMaxMetricsJsonBytes = size_t{64} << 20;

// ReadRun reads the run at `path`: a run's output directory, or its
// metrics.json. Errors: NotFound naming the path when there is no
// metrics.json; InvalidArgument naming the file, and the line or field,
// when metrics.json or clients.csv is not what Shoal writes (not JSON, a
// field missing or of the wrong type, rounds out of order, a count that is
// not one); ResourceExhausted when metrics.json is larger than
// kMaxMetricsJsonBytes.
absl::StatusOr<ReportRun> ReadRun(const std::string& path, const ReportOptions& options = {});

// RenderReport returns the HTML page comparing `runs` (1 to
// kMaxReportRuns). Text from the runs goes into the page as JSON data and
// is shown as text, never as HTML. Errors: InvalidArgument for no runs or
// too many; NotFound naming the package when Chart.js is missing.
absl::StatusOr<std::string> RenderReport(const std::vector<ReportRun>& runs,
                                         const ReportOptions& options = {});

}  // namespace shoal

#endif  // SHOAL_EXPERIMENT_REPORT_H_
