// `shoal sim` on real Fashion-MNIST: determinism whatever the number of
// workers, a thousand clients in the suite's budget, the outputs a run
// leaves, and the command line.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "experiment/experiment_config.h"
#include "experiment/simulation_run.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "secagg/update_codec.h"
#include "gmock/gmock.h"
#include "experiment/dashboard.h"
#include "experiment/run_metrics.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

ExperimentConfig Parse(const json& j) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(j.dump(), "test config");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ExperimentConfig{};
}

json BaseConfig(const std::string& output_dir, int clients, double fraction, int rounds) {
  return json{{"name", "sim-test"},
              {"seed", 7},
              {"model", "2nn"},
              {"rounds", rounds},
              {"sampling", {{"fraction_fit", fraction}, {"min_fit_clients", 1}}},
              {"data", {{"partitioner", "dirichlet"}, {"alpha", 0.5}, {"holdout_fraction", 0},
                        {"normalize", {{"mean", 0.2860}, {"std", 0.3530}}}}},
              {"server", {{"output_dir", output_dir}}},
              {"simulation", {{"clients", clients}}}};
}

double TestAccuracy(const RoundRecord& r) {
  return r.server_eval ? MetricAsDouble(r.server_eval->metrics.at("accuracy")) : -1;
}

TEST(SimulationRunTest, BitIdenticalWithOneOrThreeWorkers) {
  testing::TempDir dir;
  json j = BaseConfig(dir.File("one"), 100, 0.1, 2);
  j["simulation"]["workers"] = 1;
  j["simulation"]["dropout_fraction"] = 0.2;
  absl::StatusOr<SimulationResult> one = RunSimulation(Parse(j));
  ASSERT_TRUE(one.ok()) << one.status();
  j["simulation"]["workers"] = 3;
  j["server"]["output_dir"] = dir.File("three");
  absl::StatusOr<SimulationResult> three = RunSimulation(Parse(j));
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(one->workers, 1);
  EXPECT_EQ(three->workers, 3);
  ASSERT_EQ(one->final_model.size(), three->final_model.size());
  for (size_t i = 0; i < one->final_model.size(); ++i) {
    EXPECT_TRUE(at::equal(one->final_model.tensor(i), three->final_model.tensor(i)))
        << one->final_model.name(i);
  }
  ASSERT_EQ(one->history.size(), 3u);
  ASSERT_EQ(three->history.size(), 3u);
  for (size_t r = 0; r < 3; ++r) {
    ASSERT_TRUE(one->history[r].server_eval && three->history[r].server_eval);
    EXPECT_EQ(one->history[r].answered, three->history[r].answered);
    EXPECT_EQ(one->history[r].failures.size(), three->history[r].failures.size());
    EXPECT_EQ(TestAccuracy(one->history[r]), TestAccuracy(three->history[r]));
    EXPECT_EQ(one->history[r].server_eval->loss, three->history[r].server_eval->loss);
  }
  EXPECT_EQ(one->simulated_seconds, three->simulated_seconds);
  EXPECT_EQ(ReadModelRecord(dir.File("one/models"))->sha256_hex,
            ReadModelRecord(dir.File("three/models"))->sha256_hex);
}

// The same simulated round with and without secure aggregation: the same
// clients survive (dropouts are seeded), and the securely aggregated model
// is the plain one within the bound secagg/update_codec.h states.
TEST(SimulationRunTest, SecureAggregationMatchesThePlainRoundWithinTheBound) {
  testing::TempDir dir;
  json j = BaseConfig(dir.File("plain"), 50, 0.2, 1);
  j["simulation"]["dropout_fraction"] = 0.2;
  absl::StatusOr<SimulationResult> plain = RunSimulation(Parse(j));
  ASSERT_TRUE(plain.ok()) << plain.status();
  j["server"]["output_dir"] = dir.File("secure");
  const int64_t max_weight = 100000;  // above every client's size: no capping
  j["secure_aggregation"] = {{"enabled", true}, {"max_weight", max_weight}};
  absl::StatusOr<SimulationResult> secure = RunSimulation(Parse(j));
  ASSERT_TRUE(secure.ok()) << secure.status();

  const RoundRecord& p = plain->history[1];
  const RoundRecord& s = secure->history[1];
  ASSERT_TRUE(s.model_updated) << s.note;
  EXPECT_EQ(s.sampled, 10u);
  EXPECT_EQ(s.answered, p.answered);
  EXPECT_EQ(s.failures.size(), p.failures.size());
  EXPECT_EQ(s.train_examples, p.train_examples);
  EXPECT_EQ(MetricAsDouble(s.secagg.at("secagg_masked")), static_cast<double>(p.answered));
  const secagg::UpdateEncoding encoding;  // the defaults the config kept
  const double bound = static_cast<double>(s.answered) * encoding.values.Step() * max_weight /
                       static_cast<double>(s.train_examples);
  double worst = 0;
  for (size_t i = 0; i < plain->final_model.size(); ++i) {
    worst = std::max(worst, (plain->final_model.tensor(i) - secure->final_model.tensor(i))
                                .abs().max().item<double>());
  }
  EXPECT_LT(worst, bound);
  EXPECT_GT(worst, 0) << "the models cannot be bit-identical through quantization";
  std::cout << "secure vs plain: largest difference " << worst << ", bound " << bound << "\n";
  std::ifstream metrics(dir.File("secure/metrics.json"));
  const json m = json::parse(metrics);
  EXPECT_EQ(m["rounds"][1]["secure_aggregation"]["secagg_masked"], p.answered);
}

TEST(SimulationRunTest, ThousandClientsTrainTwoRounds) {
  testing::TempDir dir;
  json j = BaseConfig(dir.path(), 1000, 1.0, 2);
  j["data"]["partitioner"] = "iid";
  j["simulation"]["workers"] = 2;
  absl::StatusOr<SimulationResult> run = RunSimulation(Parse(j));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->history.size(), 3u);
  for (size_t r = 1; r < 3; ++r) {
    EXPECT_EQ(run->history[r].sampled, 1000u);
    EXPECT_EQ(run->history[r].answered, 1000u);
    EXPECT_EQ(run->history[r].train_examples, 60000);  // a split: every example once
    EXPECT_TRUE(run->history[r].model_updated);
  }
  // Two steps a client (60 examples, B = 32): a small start, but a start.
  EXPECT_GT(TestAccuracy(run->history[2]), TestAccuracy(run->history[0]) + 0.25);

  // What the run leaves: the model store, the history with the partition
  // summary and simulated time, and one row per client.
  absl::StatusOr<std::string> text = ReadFile(dir.File("metrics.json"), 64 << 20);
  ASSERT_TRUE(text.ok()) << text.status();
  const json metrics = json::parse(*text);
  EXPECT_EQ(metrics["partition"]["clients"], 1000);
  EXPECT_EQ(metrics["partition"]["min_examples"], 60);
  EXPECT_EQ(metrics["rounds"].size(), 3u);
  EXPECT_TRUE(metrics["rounds"][1]["simulation"].contains("sim_round_s"));
  std::ifstream csv(dir.File("clients.csv"));
  std::string line;
  int rows = 0;
  std::getline(csv, line);
  EXPECT_THAT(line, HasSubstr("client,examples,speed,class_0"));
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 1000);
  // The final model is in the server's model store format.
  ModelRecord record;
  absl::StatusOr<Parameters> stored = LoadModelParameters(dir.File("models"), &record);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(record.version, 2);
  ASSERT_EQ(stored->size(), run->final_model.size());
  for (size_t i = 0; i < stored->size(); ++i) {
    EXPECT_TRUE(at::equal(stored->tensor(i), run->final_model.tensor(i)));
  }
}

// Issue 18: a simulation feeds the same Prometheus series and dashboard
// state as a real server (here read from the registry and the state JSON
// directly; the HTTP side is the endpoint's own test).
TEST(SimulationRunTest, ASimulationFeedsTheRunMetricsAndTheDashboard) {
  testing::TempDir dir;
  json j = BaseConfig(dir.path(), 50, 0.2, 2);
  j["simulation"]["dropout_fraction"] = 0.3;
  absl::StatusOr<std::unique_ptr<Simulation>> simulation = Simulation::Create(Parse(j));
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  RunMetrics metrics;
  DashboardOptions options;
  options.run_name = "sim-test";
  options.rounds = 2;
  Dashboard dashboard(options);
  (*simulation)->AddObserver(&metrics);
  (*simulation)->AddObserver(&dashboard);
  absl::StatusOr<SimulationResult> run = (*simulation)->Run();
  ASSERT_TRUE(run.ok()) << run.status();
  auto value = [&](const std::string& name) -> double {
    for (const prometheus::MetricFamily& f : metrics.registry()->Collect()) {
      if (f.name != name) continue;
      double sum = 0;
      for (const prometheus::ClientMetric& m : f.metric) sum += m.counter.value + m.gauge.value;
      return sum;
    }
    return -1;
  };
  int64_t answered = 0, failed = 0;
  for (size_t r = 1; r < run->history.size(); ++r) {
    answered += static_cast<int64_t>(run->history[r].answered);
    failed += static_cast<int64_t>(run->history[r].failures.size());
  }
  EXPECT_EQ(value("shoal_rounds_total"), 2);
  EXPECT_EQ(value("shoal_clients_answered_total"), answered);
  EXPECT_EQ(value("shoal_clients_failed_total"), failed);
  EXPECT_GT(failed, 0);  // the dropouts, by reason
  EXPECT_EQ(value("shoal_model_version"), 2);
  EXPECT_NEAR(value("shoal_test_accuracy"), TestAccuracy(run->history.back()), 1e-12);
  const json state = dashboard.StateJson();
  ASSERT_EQ(state["rounds"].size(), 3u);
  EXPECT_EQ(state["rounds"][2]["answered"], run->history[2].answered);
  EXPECT_EQ(state["failures_by_reason"]["unavailable"], failed);
}

TEST(SimulationRunTest, TooManyClientsForASplitIsRefusedWithAHint) {
  testing::TempDir dir;
  absl::StatusOr<SimulationResult> run =
      RunSimulation(Parse(BaseConfig(dir.path(), 100000, 0.01, 1)));
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("examples_per_client"));
}

TEST(ShoalSimCommandTest, RunsAConfigAndRefusesABadOne) {
  testing::TempDir dir;
  json j = BaseConfig(dir.File("out"), 20, 0.5, 1);
  j["simulation"]["examples_per_client"] = 50;
  j["simulation"]["speed"] = {{"distribution", "lognormal"}, {"median", 20}, {"sigma", 0.5}};
  j["simulation"]["deadline_s"] = 3;
  ASSERT_TRUE(WriteFileAtomically(dir.File("sim.json"), j.dump()).ok());
  testing::Subprocess ok({SHOAL_BINARY, "sim", "--config", dir.File("sim.json"), "--workers", "2"},
                         dir.File("ok.log"));
  ASSERT_EQ(ok.Wait(absl::Seconds(120)), 0) << ok.Log();
  EXPECT_THAT(ok.Log(), HasSubstr("Simulated fleet time"));
  EXPECT_THAT(ok.Log(), HasSubstr("label distribution"));
  EXPECT_TRUE(ReadFile(dir.File("out/metrics.csv"), 1 << 20).ok());

  j["simulation"]["dropout_fraction"] = 1.5;
  ASSERT_TRUE(WriteFileAtomically(dir.File("bad.json"), j.dump()).ok());
  testing::Subprocess bad({SHOAL_BINARY, "sim", "--config", dir.File("bad.json")},
                          dir.File("bad.log"));
  EXPECT_EQ(bad.Wait(absl::Seconds(60)), 2);
  EXPECT_THAT(bad.Log(), HasSubstr("simulation.dropout_fraction"));
}

// Issue 18.3: `shoal report` over two stored runs (FedAvg and FedProx, from
// `shoal sim`) writes one page that real headless Chromium renders with
// both runs' curves, reading nothing off the page; a corrupt metrics.json
// is refused naming the file and the field.
TEST(ShoalReportCommandTest, ComparesTwoStoredRunsOnAPageChromiumRenders) {
  testing::TempDir dir;
  for (const std::string strategy : {"fedavg", "fedprox"}) {
    json j = BaseConfig(dir.File(strategy), 20, 0.5, 2);
    j["strategy"] = strategy == "fedavg" ? json{{"name", "fedavg"}}
                                         : json{{"name", "fedprox"}, {"proximal_mu", 0.01}};
    j["simulation"]["examples_per_client"] = 50;
    ASSERT_TRUE(WriteFileAtomically(dir.File(strategy + ".json"), j.dump()).ok());
    testing::Subprocess sim({SHOAL_BINARY, "sim", "--config", dir.File(strategy + ".json")},
                            dir.File(strategy + ".log"));
    ASSERT_EQ(sim.Wait(absl::Seconds(120)), 0) << sim.Log();
  }
  const std::string page = dir.File("report.html");
  testing::Subprocess report({SHOAL_BINARY, "report", dir.File("fedavg"), dir.File("fedprox"),
                              "-o", page, "--title", "FedAvg vs FedProx"},
                             dir.File("report.log"));
  ASSERT_EQ(report.Wait(absl::Seconds(60)), 0) << report.Log();
  EXPECT_THAT(report.Log(), HasSubstr("fedprox: sim-test, fedprox, 2 rounds, simulated"));

  const std::vector<std::string> chromium = testing::HeadlessChromium(dir.File("profile"));
  std::vector<std::string> dump = chromium;
  dump.insert(dump.end(), {"--dump-dom", "file://" + page});
  testing::Subprocess dom(dump, dir.File("dom.html"));
  ASSERT_EQ(dom.Wait(absl::Seconds(120)), 0) << dom.Log();
  const std::string rendered = dom.Log();
  // What each chart drew, as the page reads it back from Chart.js.
  for (const std::string run : {"fedavg", "fedprox"}) {
    const std::string label = dir.File(run);
    EXPECT_THAT(rendered, HasSubstr(label + ": 3 points")) << rendered;  // rounds 0 to 2
    EXPECT_THAT(rendered, HasSubstr(label + " (train): 2 points"));
    EXPECT_THAT(rendered, HasSubstr("<td>" + label + "</td><td>sim-test</td><td>" + run));
  }
  EXPECT_THAT(rendered, HasSubstr("<h1 id=\"title\">FedAvg vs FedProx</h1>"));
  EXPECT_THAT(rendered, HasSubstr("20 of 20 clients drawn, 10 classes"));
  // FedProx's run split the data as FedAvg's did: drawn once.
  EXPECT_THAT(rendered, HasSubstr("the same clients as " + dir.File("fedavg")));
  EXPECT_THAT(rendered, HasSubstr("no run used differential privacy"));

  std::vector<std::string> shot = chromium;
  shot.insert(shot.end(), {"--enable-logging=stderr", "--v=0", "--window-size=1400,1800",
                           "--screenshot=" + dir.File("report.png"), "file://" + page});
  testing::Subprocess screenshot(shot, dir.File("chromium.log"));
  ASSERT_EQ(screenshot.Wait(absl::Seconds(120)), 0) << screenshot.Log();
  absl::StatusOr<std::string> png = ReadFile(dir.File("report.png"));
  ASSERT_TRUE(png.ok()) << png.status() << screenshot.Log();
  EXPECT_GT(png->size(), 20000u);
  EXPECT_EQ(screenshot.Log().find("CONSOLE"), std::string::npos) << screenshot.Log();
  EXPECT_EQ(screenshot.Log().find("ERR_NAME_NOT_RESOLVED"), std::string::npos);
  if (const char* keep = std::getenv("SHOAL_KEEP_REPORT_SCREENSHOT")) {
    std::filesystem::copy_file(dir.File("report.png"), keep,
                               std::filesystem::copy_options::overwrite_existing);
  }

  // A history cut short is bad input (exit 2), named with what is wrong.
  const std::string history = dir.File("fedprox/metrics.json");
  std::string text = *ReadFile(history);
  ASSERT_TRUE(WriteFileAtomically(history, text.substr(0, text.size() - 40)).ok());
  testing::Subprocess corrupt({SHOAL_BINARY, "report", dir.File("fedavg"), dir.File("fedprox"),
                               "-o", dir.File("bad.html")},
                              dir.File("corrupt.log"));
  EXPECT_EQ(corrupt.Wait(absl::Seconds(60)), 2);
  EXPECT_THAT(corrupt.Log(), HasSubstr("shoal report: '" + history + "': not valid JSON"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("bad.html")));
}

}  // namespace
}  // namespace shoal
