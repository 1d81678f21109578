#include "experiment/report.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/files.h"
#include "common/json.h"
#include "common/json_fields.h"
#include "common/quote.h"
#include "common/status.h"
#include "server/round_json.h"
#include "telemetry/assets.h"

namespace shoal {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
// clients.csv holds up to 100,000 rows of a few numbers each.
constexpr uint64_t kMaxClientsCsvBytes = uint64_t{64} << 20;
constexpr int kMaxClasses = 1000;

std::string Quoted(const std::string& path) { return absl::StrCat("'", path, "'"); }

// ReadClientsCsv reads the first `max_rows` clients of a simulation's
// clients.csv: "client,examples,speed,class_0,...,class_{K-1}".
absl::Status ReadClientsCsv(const std::string& path, int max_rows, ReportRun* run) {
  SHOAL_ASSIGN_OR_RETURN(const std::string text, ReadFile(path, kMaxClientsCsvBytes));
  const std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  auto error = [&path](size_t line, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(Quoted(path), " line ", line, ": ", what));
  };
  if (lines.empty() || lines[0].empty()) return error(1, "no header row");
  const std::vector<absl::string_view> header = absl::StrSplit(lines[0], ',');
  if (header.size() < 4 || header[0] != "client" || header[1] != "examples" ||
      header[2] != "speed") {
    return error(1, "the header is not client,examples,speed,class_0,...");
  }
  const size_t classes = header.size() - 3;
  if (classes > kMaxClasses) {
    return error(1, absl::StrCat(classes, " classes; at most ", kMaxClasses, " are drawn"));
  }
  for (size_t k = 0; k < classes; ++k) {
    if (header[3 + k] != absl::StrCat("class_", k)) {
      return error(1, absl::StrCat("column ", 4 + k, " is ", QuoteForMessage(header[3 + k], 40),
                                   ", not 'class_", k, "'"));
    }
  }
  for (size_t i = 1; i < lines.size() && run->client_classes.size() < static_cast<size_t>(max_rows);
       ++i) {
    if (lines[i].empty() && i == lines.size() - 1) break;  // the final newline
    const std::vector<absl::string_view> cells = absl::StrSplit(lines[i], ',');
    if (cells.size() != header.size()) {
      return error(i + 1, absl::StrCat(cells.size(), " columns, but the header has ",
                                       header.size()));
    }
    int64_t examples = 0;
    if (!absl::SimpleAtoi(cells[1], &examples) || examples < 0) {
      return error(i + 1, absl::StrCat("'examples' is ", QuoteForMessage(cells[1], 40),
                                       ", not a count"));
    }
    std::vector<int64_t> counts(classes);
    int64_t sum = 0;
    for (size_t k = 0; k < classes; ++k) {
      if (!absl::SimpleAtoi(cells[3 + k], &counts[k]) || counts[k] < 0 ||
          counts[k] > examples) {
        return error(i + 1, absl::StrCat("'class_", k, "' is ", QuoteForMessage(cells[3 + k], 40),
                                         ", not a count of at most 'examples' (", examples,
                                         ")"));
      }
      sum += counts[k];
    }
    if (sum != examples) {
      return error(i + 1, absl::StrCat("the classes add up to ", sum, ", but 'examples' is ",
                                       examples));
    }
    run->client_classes.push_back(std::move(counts));
  }
  return absl::OkStatus();
}

// ReadRound reads one entry of metrics.json's "rounds" into `out`;
// `wall_clock_s` is the run's real time before it.
absl::Status ReadRound(JsonFields& j, bool simulated, double wall_clock_s, ReportRound* out) {
  SHOAL_ASSIGN_OR_RETURN(const RoundRecord r, RoundRecordFromJson(j));
  out->round = r.round;
  out->test_accuracy = r.server_eval ? EvaluateAccuracy(*r.server_eval) : kNan;
  out->test_loss = r.server_eval ? r.server_eval->loss : kNan;
  out->federated_accuracy = r.federated_eval ? EvaluateAccuracy(*r.federated_eval) : kNan;
  out->federated_loss = r.federated_eval ? r.federated_eval->loss : kNan;
  out->train_loss = r.train_loss;
  out->upload_bytes = r.upload_bytes;
  out->sampled = r.sampled;
  out->answered = r.answered;
  out->failed = r.failures.size();
  out->declined = r.declined.size();
  auto eps = r.strategy_metrics.find("dp_epsilon");
  out->dp_epsilon = eps == r.strategy_metrics.end() ? kNan : MetricAsDouble(eps->second);
  // The round's real duration: recorded by the run since `real_seconds`
  // was; before that, a real run's `seconds` are real, a simulation's are
  // simulated.
  double real = simulated ? kNan : r.seconds;
  if (j.Has("real_seconds")) SHOAL_RETURN_IF_ERROR(j.NumberOrNan("real_seconds", &real));
  out->wall_clock_s = wall_clock_s + real;
  out->sim_clock_s = simulated && r.round == 0 ? 0 : kNan;
  if (j.Has("simulation")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields sim, j.Object("simulation"));
    if (sim.Has("sim_clock_s")) {
      SHOAL_RETURN_IF_ERROR(sim.Number("sim_clock_s", 0, 1e15, &out->sim_clock_s));
    }
  }
  return absl::OkStatus();
}

// JsonNumber writes a figure for the page: non-finite as null.
json JsonNumber(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json RunToJson(const ReportRun& run) {
  json rounds = json::object();
  auto column = [&run, &rounds](const char* name, auto field) {
    json values = json::array();
    for (const ReportRound& r : run.rounds) values.push_back(JsonNumber(field(r)));
    rounds[name] = std::move(values);
  };
  column("round", [](const ReportRound& r) { return static_cast<double>(r.round); });
  column("test_accuracy", [](const ReportRound& r) { return r.test_accuracy; });
  column("test_loss", [](const ReportRound& r) { return r.test_loss; });
  column("federated_accuracy", [](const ReportRound& r) { return r.federated_accuracy; });
  column("federated_loss", [](const ReportRound& r) { return r.federated_loss; });
  column("train_loss", [](const ReportRound& r) { return r.train_loss; });
  column("wall_clock_s", [](const ReportRound& r) { return r.wall_clock_s; });
  column("sim_clock_s", [](const ReportRound& r) { return r.sim_clock_s; });
  column("upload_bytes", [](const ReportRound& r) { return static_cast<double>(r.upload_bytes); });
  column("dp_epsilon", [](const ReportRound& r) { return r.dp_epsilon; });
  column("sampled", [](const ReportRound& r) { return static_cast<double>(r.sampled); });
  column("answered", [](const ReportRound& r) { return static_cast<double>(r.answered); });
  column("failed", [](const ReportRound& r) { return static_cast<double>(r.failed); });
  column("declined", [](const ReportRound& r) { return static_cast<double>(r.declined); });
  return {{"label", run.label},
          {"name", run.name},
          {"strategy", run.strategy},
          {"model", run.model},
          {"seed", run.seed},
          {"simulated", run.simulated},
          {"clients", run.clients},
          {"partitioner", run.partitioner},
          {"mean_tv_distance", JsonNumber(run.mean_tv_distance)},
          {"client_classes", run.client_classes},
          {"rounds", std::move(rounds)}};
}

// ForScriptElement makes JSON safe inside <script type="application/json">:
// '<', '>' and '&' only occur inside its strings, where \u escapes mean the
// same, so no "</script>" or "<!--" can end the element early.
std::string ForScriptElement(const std::string& json_text) {
  return absl::StrReplaceAll(json_text,
                             {{"<", "\\u003c"}, {">", "\\u003e"}, {"&", "\\u0026"}});
}

}  // namespace

absl::StatusOr<ReportRun> ReadRun(const std::string& path, const ReportOptions& options) {
  ReportRun run;
  run.label = path;
  while (run.label.size() > 1 && run.label.back() == '/') run.label.pop_back();
  std::error_code ec;
  const bool folder = fs::is_directory(path, ec);
  if (!folder && !fs::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(Quoted(path), " does not exist"));
  }
  run.metrics_path = folder ? (fs::path(path) / "metrics.json").string() : path;
  absl::StatusOr<std::string> text = ReadFile(run.metrics_path, kMaxMetricsJsonBytes);
  if (absl::IsNotFound(text.status()) && folder) {
    return absl::NotFoundError(
        absl::StrCat(Quoted(path), " holds no metrics.json: is it a run's output directory? "
                                   "A run writes it when its first round ends"));
  }
  if (!text.ok()) return text.status();
  JsonLimits limits;
  limits.max_bytes = kMaxMetricsJsonBytes;
  SHOAL_ASSIGN_OR_RETURN(const json parsed, ParseJson(*text, Quoted(run.metrics_path), limits));
  JsonFields::Context context;
  context.prefix = absl::StrCat(Quoted(run.metrics_path), ": field ");
  context.stored_file = true;
  JsonFields j(parsed, "", context);
  SHOAL_RETURN_IF_ERROR(j.Require({"name", "strategy", "rounds"}));
  SHOAL_RETURN_IF_ERROR(j.String("name", &run.name));
  SHOAL_RETURN_IF_ERROR(j.String("strategy", &run.strategy));
  SHOAL_RETURN_IF_ERROR(j.String("model", &run.model));
  SHOAL_RETURN_IF_ERROR(
      j.Integer("seed", 0, std::numeric_limits<int64_t>::max(), &run.seed));
  if (j.Has("partition")) {
    run.simulated = true;
    SHOAL_ASSIGN_OR_RETURN(JsonFields partition, j.Object("partition"));
    SHOAL_RETURN_IF_ERROR(partition.Integer("clients", 0, std::numeric_limits<int64_t>::max(),
                                            &run.clients));
    SHOAL_RETURN_IF_ERROR(partition.String("partitioner", &run.partitioner));
    SHOAL_RETURN_IF_ERROR(partition.Number("mean_tv_distance", 0, 1, &run.mean_tv_distance));
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<JsonFields> rounds, j.Objects("rounds"));
  for (const JsonFields& r : rounds) run.simulated = run.simulated || r.Has("simulation");
  double wall_clock_s = 0;
  for (JsonFields& r : rounds) {
    ReportRound round;
    SHOAL_RETURN_IF_ERROR(ReadRound(r, run.simulated, wall_clock_s, &round));
    if (!run.rounds.empty() && round.round <= run.rounds.back().round) {
      return r.Error("round", absl::StrCat("is ", round.round, ", after round ",
                                           run.rounds.back().round, ": rounds must increase"));
    }
    wall_clock_s = round.wall_clock_s;
    run.rounds.push_back(round);
  }
  const std::string csv = (fs::path(run.metrics_path).parent_path() / "clients.csv").string();
  if (run.simulated && fs::exists(csv, ec)) {
    SHOAL_RETURN_IF_ERROR(ReadClientsCsv(csv, options.max_clients, &run));
  }
  return run;
}

absl::StatusOr<std::string> RenderReport(const std::vector<ReportRun>& runs,
                                         const ReportOptions& options) {
  if (runs.empty()) return absl::InvalidArgumentError("a report needs at least one run");
  if (runs.size() > kMaxReportRuns) {
    return absl::InvalidArgumentError(absl::StrCat(
        runs.size(), " runs: a report compares at most ", kMaxReportRuns, " (a chart of more "
        "lines is unreadable); write several reports"));
  }
  SHOAL_ASSIGN_OR_RETURN(std::string chart_js,
                         telemetry::ReadChartJs(options.chart_js_path.empty()
                                                    ? telemetry::kChartJsPath
                                                    : options.chart_js_path));
  json data{{"title", options.title}, {"runs", json::array()}};
  for (const ReportRun& run : runs) data["runs"].push_back(RunToJson(run));
  // Paths and names may hold bytes that are not UTF-8: replace them.
  const std::string data_text =
      ForScriptElement(data.dump(-1, ' ', false, json::error_handler_t::replace));
  // Chart.js inline: "</script" inside it would end the element; "<\/"
  // means "</" in every JavaScript string and regular expression.
  chart_js = absl::StrReplaceAll(chart_js, {{"</script", "<\\/script"}});
  return absl::StrReplaceAll(telemetry::ReportHtml(),
                             {{"{{SHOAL_CHART_JS}}", chart_js}, {"{{SHOAL_RUNS}}", data_text}});
}

}  // namespace shoal
