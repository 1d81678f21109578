// `shoal report`'s reading and page (experiment/report.h), on histories
// written by the real writer (ProgressReporter) and corrupted by hand.
#include "experiment/report.h"

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "experiment/experiment_config.h"
#include "experiment/progress_reporter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

RoundRecord Round(uint32_t round, double accuracy, double epsilon) {
  RoundRecord r;
  r.round = round;
  r.sampled = 3;
  r.answered = round == 0 ? 0 : 2;
  if (round > 0) r.failures.push_back({"client-2", absl::DeadlineExceededError("late")});
  r.model_version = round;
  r.train_loss = round == 0 ? NAN : 1.0 / round;
  r.upload_bytes = round == 0 ? 0 : 1000 * round;
  r.server_eval = EvaluateRes{100, 2.0 - accuracy, {{"accuracy", accuracy}}};
  r.seconds = 10;
  if (round > 0) r.strategy_metrics["dp_epsilon"] = epsilon * round;
  return r;
}

// WriteHistory writes a run of `rounds` rounds through ProgressReporter,
// as `shoal server` does (or `shoal sim`, with `simulated`).
void WriteHistory(const std::string& dir, int rounds, bool simulated) {
  ExperimentConfig config;
  config.name = "run-in-" + dir;
  config.strategy = "fedprox";
  config.coordinator.num_rounds = rounds;
  ProgressReporter progress(config, dir);
  if (simulated) {
    progress.AddRunInfo("partition", {{"clients", 40}, {"partitioner", "dirichlet"},
                                      {"mean_tv_distance", 0.4}});
    progress.SetRoundExtras("simulation", [](uint32_t round) {
      return Metrics{{"sim_clock_s", 100.0 * round}, {"late", int64_t{0}}};
    });
  }
  for (int r = 0; r <= rounds; ++r) progress.OnRoundEnd(Round(r, 0.5 + 0.1 * r, 0.25));
}

std::string Corrupt(const std::string& path, const std::string& from, const std::string& to) {
  std::string text = *ReadFile(path);
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  EXPECT_TRUE(WriteFileAtomically(path, text).ok());
  return text;
}

TEST(ReportTest, ReadsWhatARealRunsProgressReporterWrote) {
  testing::TempDir dir;
  WriteHistory(dir.path(), 3, /*simulated=*/false);
  absl::StatusOr<ReportRun> run = ReadRun(dir.path() + "/");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->label, dir.path());
  EXPECT_EQ(run->strategy, "fedprox");
  EXPECT_FALSE(run->simulated);
  ASSERT_EQ(run->rounds.size(), 4u);
  EXPECT_DOUBLE_EQ(run->rounds[3].test_accuracy, 0.8);
  EXPECT_DOUBLE_EQ(run->rounds[3].test_loss, 1.2);
  EXPECT_DOUBLE_EQ(run->rounds[2].dp_epsilon, 0.5);
  EXPECT_TRUE(std::isnan(run->rounds[0].dp_epsilon));
  EXPECT_EQ(run->rounds[3].upload_bytes, 3000);
  EXPECT_EQ(run->rounds[3].failed, 1u);
  EXPECT_TRUE(std::isnan(run->rounds[3].sim_clock_s));
  // The real time of each round, as the reporter measured it: increasing.
  EXPECT_GE(run->rounds[3].wall_clock_s, run->rounds[0].wall_clock_s);
  EXPECT_TRUE(std::isfinite(run->rounds[3].wall_clock_s));
  EXPECT_TRUE(run->client_classes.empty());
}

TEST(ReportTest, ReadsASimulationsClockAndItsClientsLabels) {
  testing::TempDir dir;
  WriteHistory(dir.path(), 2, /*simulated=*/true);
  ASSERT_TRUE(WriteFileAtomically(dir.File("clients.csv"),
                                  "client,examples,speed,class_0,class_1\n"
                                  "0,5,1,5,0\n1,7,2.5,3,4\n2,2,1,1,1\n")
                  .ok());
  ReportOptions options;
  options.max_clients = 2;
  absl::StatusOr<ReportRun> run = ReadRun(dir.File("metrics.json"), options);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->simulated);
  EXPECT_EQ(run->clients, 40u);
  EXPECT_EQ(run->partitioner, "dirichlet");
  ASSERT_EQ(run->rounds.size(), 3u);
  EXPECT_EQ(run->rounds[0].sim_clock_s, 0);
  EXPECT_EQ(run->rounds[2].sim_clock_s, 200);
  EXPECT_EQ(run->client_classes,
            (std::vector<std::vector<int64_t>>{{5, 0}, {3, 4}}));  // the first 2
}

TEST(ReportTest, ACorruptMetricsJsonIsRefusedNamingTheFileAndWhatIsWrong) {
  testing::TempDir dir;
  WriteHistory(dir.path(), 2, /*simulated=*/false);
  const std::string file = dir.File("metrics.json");
  const std::string good = *ReadFile(file);

  ASSERT_TRUE(WriteFileAtomically(file, good.substr(0, good.size() / 2)).ok());
  absl::Status cut = ReadRun(dir.path()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(cut)) << cut;
  EXPECT_THAT(std::string(cut.message()), HasSubstr("'" + file + "': not valid JSON"));
  EXPECT_THAT(std::string(cut.message()), HasSubstr("line "));

  ASSERT_TRUE(WriteFileAtomically(file, good).ok());
  Corrupt(file, "\"round\": 1", "\"round\": \"one\"");
  absl::Status type = ReadRun(dir.path()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(type)) << type;
  EXPECT_THAT(std::string(type.message()), HasSubstr(file));
  EXPECT_THAT(std::string(type.message()), HasSubstr("rounds[1].round"));

  ASSERT_TRUE(WriteFileAtomically(file, good).ok());
  Corrupt(file, "\"round\": 2", "\"round\": 1");
  absl::Status order = ReadRun(dir.path()).status();
  EXPECT_THAT(std::string(order.message()), HasSubstr("rounds[2].round' is 1, after round 1"));

  ASSERT_TRUE(WriteFileAtomically(file, good).ok());
  Corrupt(file, "\"strategy\": \"fedprox\"", "\"strategy\": 7");
  EXPECT_THAT(std::string(ReadRun(dir.path()).status().message()),
              HasSubstr("'strategy' has the wrong type"));

  ASSERT_TRUE(WriteFileAtomically(file, "[]").ok());
  EXPECT_FALSE(ReadRun(dir.path()).ok());

  testing::TempDir empty;
  absl::Status none = ReadRun(empty.path()).status();
  EXPECT_TRUE(absl::IsNotFound(none)) << none;
  EXPECT_THAT(std::string(none.message()), HasSubstr("holds no metrics.json"));
  EXPECT_TRUE(absl::IsNotFound(ReadRun(empty.File("missing")).status()));
}

TEST(ReportTest, AMalformedClientsCsvIsRefusedNamingItsLine) {
  testing::TempDir dir;
  WriteHistory(dir.path(), 1, /*simulated=*/true);
  const std::string csv = dir.File("clients.csv");
  auto message = [&](const std::string& text) {
    EXPECT_TRUE(WriteFileAtomically(csv, text).ok());
    return std::string(ReadRun(dir.path()).status().message());
  };
  EXPECT_THAT(message("client,examples,speed,class_0\n0,5,1,x\n"),
              HasSubstr("clients.csv' line 2: 'class_0' is 'x'"));
  EXPECT_THAT(message("client,examples,speed,class_0,class_1\n0,5,1,2,2\n"),
              HasSubstr("line 2: the classes add up to 4, but 'examples' is 5"));
  EXPECT_THAT(message("client,examples,speed,class_0\n0,5,1\n"),
              HasSubstr("line 2: 3 columns, but the header has 4"));
  EXPECT_THAT(message("id,n\n"), HasSubstr("line 1: the header is not"));
}

TEST(ReportTest, ThePageInlinesChartJsAndKeepsTheRunsTextOutOfItsHtml) {
  testing::TempDir dir;
  const std::string hostile = dir.File("</script><script>alert(1)</script>");
  ASSERT_TRUE(MakeDirectories(hostile).ok());
  WriteHistory(hostile, 2, /*simulated=*/false);
  absl::StatusOr<ReportRun> run = ReadRun(hostile);
  ASSERT_TRUE(run.ok()) << run.status();
  // A stand-in for Chart.js that holds what would end its element early.
  ASSERT_TRUE(WriteFileAtomically(dir.File("chart.js"), "var Chart = '</script>';").ok());
  ReportOptions options;
  options.chart_js_path = dir.File("chart.js");
  options.title = "FedProx <b>vs</b> FedAvg";
  absl::StatusOr<std::string> html = RenderReport({*run, *run}, options);
  ASSERT_TRUE(html.ok()) << html.status();
  EXPECT_THAT(*html, HasSubstr("var Chart = '<\\/script>';"));
  EXPECT_EQ(html->find("<script>alert(1)"), std::string::npos);
  EXPECT_EQ(html->find("<b>vs</b>"), std::string::npos);
  EXPECT_THAT(*html, HasSubstr("\\u003cscript\\u003ealert(1)"));
  EXPECT_EQ(html->find("{{SHOAL_"), std::string::npos);
  EXPECT_EQ(html->find("http://"), std::string::npos);
  EXPECT_EQ(html->find("https://"), std::string::npos);

  EXPECT_FALSE(RenderReport({}, options).ok());
  EXPECT_FALSE(RenderReport(std::vector<ReportRun>(kMaxReportRuns + 1, *run), options).ok());
  options.chart_js_path = dir.File("no-chart.js");
  absl::Status missing = RenderReport({*run}, options).status();
  EXPECT_TRUE(absl::IsNotFound(missing));
  EXPECT_THAT(std::string(missing.message()), HasSubstr("libjs-chart.js"));
}

}  // namespace
}  // namespace shoal
