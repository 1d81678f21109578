#include "experiment/experiment_config.h"

#include "common/files.h"
#include "common/net_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const std::string& text) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(text, "exp.json");
  EXPECT_FALSE(c.ok()) << text;
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ExperimentConfigTest, DefaultsAreTheMainJob) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig("{}", "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.name, "cnn");
  EXPECT_EQ(c->strategy, "fedavg");
  EXPECT_EQ(c->partition.scheme, client::PartitionScheme::kDirichlet);
  EXPECT_DOUBLE_EQ(c->partition.alpha, 0.5);
  EXPECT_EQ(c->partition.num_partitions, 5);
  EXPECT_EQ(c->coordinator.min_fit_clients, 5u);
  EXPECT_EQ(c->fit.batch_size(), 32u);
}

TEST(ExperimentConfigTest, ShippedExampleConfigIsValid) {
  absl::StatusOr<ExperimentConfig> c =
      LoadExperimentConfig(std::string(SHOAL_SOURCE_DIR) + "/examples/fashion_mnist/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data.dir, "/usr/share/datasets/fashion-mnist");
}

TEST(ExperimentConfigTest, ShippedSimulationConfigIsValid) {
  absl::StatusOr<ExperimentConfig> c =
      LoadExperimentConfig(std::string(SHOAL_SOURCE_DIR) + "/examples/simulation/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->simulation.clients, 10000u);
  EXPECT_EQ(c->simulation.examples_per_client, 60);
  EXPECT_EQ(c->simulation.population.speed.kind, simulation::Distribution::Kind::kLogNormal);
  EXPECT_DOUBLE_EQ(c->simulation.population.speed.sigma, 0.7);
  EXPECT_EQ(c->simulation.population.availability.kind,
            simulation::AvailabilityOptions::Kind::kDiurnal);
  EXPECT_DOUBLE_EQ(c->simulation.options.dropout_fraction, 0.05);
  EXPECT_DOUBLE_EQ(c->simulation.options.deadline_s, 120);
  EXPECT_EQ(c->simulation.options.seed, c->seed);
}

TEST(ExperimentConfigTest, SimulationSectionErrorsNameTheKey) {
  auto error = [](const std::string& text) {
    absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(text, "sim.json");
    return c.ok() ? std::string("accepted") : std::string(c.status().message());
  };
  EXPECT_THAT(error(R"({"simulation": {"client": 5}})"), HasSubstr("simulation.client'"));
  EXPECT_THAT(error(R"({"simulation": {"dropout_fraction": 1}})"),
              HasSubstr("simulation.dropout_fraction"));
  EXPECT_THAT(error(R"({"simulation": {"speed": {"distribution": "gamma"}}})"),
              HasSubstr("simulation.speed.distribution"));
  EXPECT_THAT(error(R"({"simulation": {"speed": {"distribution": "uniform", "min": 5, "max": 2}}})"),
              HasSubstr("max"));
  EXPECT_THAT(error(R"({"simulation": {"availability": {"kind": "sometimes"}}})"),
              HasSubstr("simulation.availability.kind"));
  EXPECT_THAT(error(R"({"simulation": {"availability": {"kind": "random", "probability": 0}}})"),
              HasSubstr("probability"));
  EXPECT_THAT(error(R"({"data": {"partitioner": "quantity_skew", "power_law_exponent": -1}})"),
              HasSubstr("data.power_law_exponent"));
  EXPECT_THAT(error(R"({"target_accuracy": 2})"), HasSubstr("target_accuracy"));
  EXPECT_THAT(error(R"({"simulation": {"uplink_mbps": 0}})"), HasSubstr("simulation.uplink_mbps"));
  EXPECT_THAT(error(R"({"simulation": {"downlink_mbps": {"distribution": "lognormal", "sigma": 11}}})"),
              HasSubstr("simulation.downlink_mbps.sigma"));
  EXPECT_THAT(error(R"({"simulation": {"downlink_mbps": "fast"}})"),
              HasSubstr("simulation.downlink_mbps"));
}

TEST(ExperimentConfigTest, MetricsSectionIsReadAndItsErrorsNameTheKey) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(
      R"({"server": {"metrics": {"listen": "127.0.0.1:9464", "token_file": "/etc/shoal/token"}}})",
      "m.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9464");
  EXPECT_EQ(c->metrics.token_file, "/etc/shoal/token");
  auto error = [](const std::string& text) {
    absl::StatusOr<ExperimentConfig> bad = ParseExperimentConfig(text, "m.json");
    return bad.ok() ? std::string("accepted") : std::string(bad.status().message());
  };
  EXPECT_THAT(error(R"({"server": {"metrics": {}}})"), HasSubstr("server.metrics.listen"));
  EXPECT_THAT(error(R"({"server": {"metrics": {"listen": "127.0.0.1:99999"}}})"),
              HasSubstr("server.metrics.listen"));
  EXPECT_THAT(error(R"({"server": {"metrics": {"listen": "127.0.0.1:1", "port": 2}}})"),
              HasSubstr("server.metrics.port"));
}

TEST(ExperimentConfigTest, PerDeviceLinkSpeedsAreANumberOrADistribution) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(
      R"({"simulation": {"bandwidth_mbps": 10, "uplink_mbps": 2.5,
          "downlink_mbps": {"distribution": "lognormal", "median": 20, "sigma": 1}}})",
      "links.json");
  ASSERT_TRUE(c.ok()) << c.status();
  const simulation::PopulationOptions& p = c->simulation.population;
  ASSERT_TRUE(p.uplink_mbps.has_value());
  EXPECT_EQ(p.uplink_mbps->kind, simulation::Distribution::Kind::kConstant);
  EXPECT_DOUBLE_EQ(p.uplink_mbps->value, 2.5);
  ASSERT_TRUE(p.downlink_mbps.has_value());
  EXPECT_EQ(p.downlink_mbps->kind, simulation::Distribution::Kind::kLogNormal);
  EXPECT_DOUBLE_EQ(p.downlink_mbps->median, 20);
  EXPECT_DOUBLE_EQ(c->simulation.options.bandwidth_mbps, 10);
  absl::StatusOr<ExperimentConfig> none = ParseExperimentConfig(R"({"simulation": {}})", "x.json");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->simulation.population.downlink_mbps.has_value());
}

TEST(ExperimentConfigTest, ServingSectionIsReadAndItsErrorsNameTheKey) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(
      R"({"server": {"serving": {"dir": "/srv/serving", "auto_promote": true, "margin": 0.02,
          "canary_fraction": 0.25, "min_canary_reports": 5, "canary_deadline_s": 60}}})",
      "serving.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->serving.dir, "/srv/serving");
  EXPECT_TRUE(c->serving.auto_promote);
  EXPECT_DOUBLE_EQ(c->serving.margin, 0.02);
  EXPECT_DOUBLE_EQ(c->serving.canary_fraction, 0.25);
  EXPECT_EQ(c->serving.min_canary_reports, 5);
  EXPECT_DOUBLE_EQ(c->serving.canary_deadline_s, 60);
  auto error = [](const std::string& text) {
    absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(text, "serving.json");
    return c.ok() ? std::string("accepted") : std::string(c.status().message());
  };
  // No dir: a run submitted to `shoal serve` uses the federation's catalog
  // (`shoal server` refuses auto_promote without one).
  absl::StatusOr<ExperimentConfig> submitted =
      ParseExperimentConfig(R"({"server": {"serving": {"auto_promote": true}}})", "run.json");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_TRUE(submitted->serving.dir.empty());
  EXPECT_TRUE(submitted->serving.auto_promote);
  EXPECT_THAT(error(R"({"server": {"serving": {"dir": ""}}})"), HasSubstr("server.serving.dir"));
  EXPECT_THAT(error(R"({"server": {"serving": {"dir": "s", "canary_fraction": 2}}})"),
              HasSubstr("server.serving.canary_fraction"));
  EXPECT_THAT(error(R"({"server": {"serving": {"dir": "s", "min_canary_reports": 0}}})"),
              HasSubstr("server.serving.min_canary_reports"));
  EXPECT_THAT(error(R"({"server": {"serving": {"dir": "s", "canary": 1}}})"),
              HasSubstr("server.serving.canary"));
}

TEST(ExperimentConfigTest, EverySectionIsRead) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(R"({
    "name": "x", "seed": 9, "rounds": 3, "model": "2nn",
    "strategy": {"name": "fedavg"},
    "fit": {"local_epochs": 2, "batch_size": 64, "learning_rate": 0.1, "momentum": 0.5,
            "weight_decay": 0.001},
    "sampling": {"fraction_fit": 0.5, "min_fit_clients": 2, "min_available_clients": 3,
                 "max_examples_per_client": 5000},
    "timeouts": {"round_s": 30, "wait_for_clients_s": 10},
    "data": {"dir": "/d", "partitioner": "shards", "num_partitions": 10,
             "classes_per_client": 3, "seed": 4, "holdout_fraction": 0.2},
    "server": {"address": "127.0.0.1:1234", "output_dir": "out", "evaluate": false,
               "threads": 2}})",
                                                             "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->coordinator.num_rounds, 3u);
  EXPECT_EQ(c->fit.local_epochs(), 2u);
  EXPECT_DOUBLE_EQ(c->fit.weight_decay(), 0.001);
  EXPECT_DOUBLE_EQ(c->coordinator.sampling.fraction, 0.5);
  EXPECT_EQ(c->coordinator.min_available_clients, 3u);
  EXPECT_EQ(c->coordinator.max_examples_per_client, 5000);
  EXPECT_EQ(c->coordinator.round_timeout, absl::Seconds(30));
  EXPECT_EQ(c->partition.scheme, client::PartitionScheme::kShards);
  EXPECT_EQ(c->partition.classes_per_client, 3);
  EXPECT_EQ(c->partition.seed, 4u);
  EXPECT_EQ(c->coordinator.seed, 9u);
  EXPECT_FALSE(c->server_evaluation);
  EXPECT_EQ(c->threads, 2u);
}

TEST(ExperimentConfigTest, ModelTaskAndDataFormatsAreRead) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(R"({
    "model": {"name": "mlp", "hidden": [64, 32], "input_shape": [30], "outputs": 1},
    "task": {"kind": "regression", "loss": "l1"},
    "data": {"format": "csv", "train": "t.csv.gz", "test_fraction": 0.2, "seed": 5,
             "csv": {"target": ["a", "b"], "ignore": "id", "skip_lines": 1, "header": false,
                     "column_names": ["id", "a", "b", "c"], "delimiter": " ",
                     "targets_file": "y.csv"},
             "normalize": {"mean": [1, 2], "std": [3, 4]}, "partitioner": "iid"}})",
                                                             "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(client::ModelSpecToString(c->model), "mlp-30-1-64x32");
  EXPECT_EQ(c->task.kind, client::TaskKind::kRegression);
  EXPECT_EQ(c->task.regression_loss, client::RegressionLoss::kL1);
  EXPECT_EQ(c->data.format, client::DataFormat::kCsv);
  EXPECT_EQ(c->data.train, "t.csv.gz");
  EXPECT_DOUBLE_EQ(c->data.test_fraction, 0.2);
  EXPECT_EQ(c->data.split_seed, 5u);
  EXPECT_EQ(c->data.csv.target_columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c->data.csv.ignore_columns, (std::vector<std::string>{"id"}));
  EXPECT_EQ(c->data.csv.skip_lines, 1);
  EXPECT_FALSE(c->data.csv.header);
  EXPECT_EQ(c->data.csv.delimiter, ' ');
  EXPECT_EQ(c->data.csv.targets_path, "y.csv");
  EXPECT_EQ(c->data.normalization.mode, client::Normalization::Mode::kGiven);
  EXPECT_EQ(c->data.normalization.std, (std::vector<double>{3, 4}));

  c = ParseExperimentConfig(R"({"model": {"path": "net.pt"}, "task": {"kind": "binary"},
    "data": {"format": "image_folder", "train": "tr", "test": "te", "normalize": "auto",
             "image": {"height": 32, "width": 24, "channels": 1, "resize": true}}})",
                            "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(client::IsBuiltinModel(c->model));
  EXPECT_EQ(c->task.kind, client::TaskKind::kMultiLabel);
  EXPECT_EQ(c->data.images.height, 32);
  EXPECT_EQ(c->data.images.channels, 1);
  EXPECT_EQ(c->data.normalization.mode, client::Normalization::Mode::kAuto);
}

TEST(ExperimentConfigTest, ModelTaskAndDataErrorsNameTheKey) {
  EXPECT_THAT(ErrorOf(R"({"model": {"name": "cnn", "hidden": [8]}})"), HasSubstr("model.hidden"));
  EXPECT_THAT(ErrorOf(R"({"model": {"name": "mlp", "path": "x.pt"}})"), HasSubstr("either"));
  EXPECT_THAT(ErrorOf(R"({"model": {"name": "mlp", "input_shape": [0]}})"),
              HasSubstr("model.input_shape"));
  EXPECT_THAT(ErrorOf(R"({"task": {"kind": "ranking"}})"), HasSubstr("task.kind"));
  EXPECT_THAT(ErrorOf(R"({"task": {"loss": "l1"}})"), HasSubstr("regression only"));
  EXPECT_THAT(ErrorOf(R"({"data": {"format": "parquet"}})"), HasSubstr("data.format"));
  EXPECT_THAT(ErrorOf(R"({"data": {"format": "csv"}})"), HasSubstr("data.train"));
  EXPECT_THAT(ErrorOf(R"({"data": {"format": "csv", "train": "t.csv"}})"),
              HasSubstr("data.csv.target"));
  EXPECT_THAT(ErrorOf(R"({"data": {"format": "image_folder", "train": "d"}})"),
              HasSubstr("height"));
  EXPECT_THAT(ErrorOf(R"({"data": {"normalize": {"mean": [1, 2], "std": [1]}}})"),
              HasSubstr("2 means but 1 stds"));
  EXPECT_THAT(ErrorOf(R"({"data": {"normalize": {"mean": 0, "std": 0}}})"), HasSubstr("> 0"));
  EXPECT_THAT(ErrorOf(R"({"data": {"normalize": "zscore"}})"), HasSubstr("data.normalize"));
  EXPECT_THAT(ErrorOf(R"({"data": {"csv": {"delimiter": "ab"}}})"), HasSubstr("one character"));
}

TEST(ExperimentConfigTest, UnknownKeysAreNamedWithTheirPath) {
  std::string e = ErrorOf(R"({"fit": {"lr": 0.1}})");
  EXPECT_NE(e.find("unknown key 'fit.lr'"), std::string::npos) << e;
  EXPECT_NE(e.find("learning_rate"), std::string::npos) << e;  // lists the known keys
  EXPECT_NE(e.find("exp.json"), std::string::npos) << e;
  e = ErrorOf(R"({"roundz": 3})");
  EXPECT_NE(e.find("unknown key 'roundz'"), std::string::npos) << e;
}

// Found by fuzz/experiment_config_fuzzer: a number too large for a double is
// an out_of_range exception from nlohmann's parser, not a parse_error, and
// escaped ParseExperimentConfig (std::terminate).
TEST(ExperimentConfigTest, NumberTooLargeForADoubleIsInvalidJson) {
  for (const std::string& text :
       {std::string(R"({"rounds": 10e53875182})"), std::string(R"({"fit": {"momentum": -1e400}})")}) {
    std::string e = ErrorOf(text);
    EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
    EXPECT_NE(e.find("exp.json"), std::string::npos) << e;
  }
}

TEST(ExperimentConfigTest, WrongTypesAndRangesAreNamed) {
  EXPECT_NE(ErrorOf(R"({"rounds": "ten"})").find("'rounds' must be an integer"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"rounds": 0})").find("'rounds' = 0 is out of range"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"fit": {"learning_rate": 0}})").find("'fit.learning_rate'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"fit": {"momentum": 1.5}})").find("'fit.momentum'"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"data": {"alpha": -1}})").find("'data.alpha'"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"data": {"partitioner": "random"}})").find("data.partitioner"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"server": {"evaluate": "yes"}})").find("true or false"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"model": "resnet"})").find("'model'"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"strategy": "fedavg"})").find("'strategy' must be an object"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"sampling": {"min_fit_clients": 4, "min_available_clients": 2}})")
                .find("min_available_clients"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"sampling": {"max_examples_per_client": -1}})")
                .find("'sampling.max_examples_per_client'"),
            std::string::npos);
}

// Issue 14: 100,000 nested arrays overflowed the stack of `shoal server`,
// `shoal client` and `shoal infer`; a wrong type echoed the whole value.
TEST(ExperimentConfigTest, DeeplyNestedConfigIsRefusedNotACrash) {
  const std::string deep = R"({"rounds": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const std::string e = ErrorOf(deep);
  EXPECT_THAT(e, HasSubstr("exp.json"));
  EXPECT_THAT(e, HasSubstr("nests deeper than"));
  EXPECT_LT(e.size(), 200u);
  // Within the depth bound, the wrong type is named without the value.
  const std::string wide = R"({"rounds": [[")" + std::string(100000, '7') + R"("]]})";
  const std::string type = ErrorOf(wide);
  EXPECT_THAT(type, HasSubstr("'rounds' must be an integer, got an array of 1 element"));
  EXPECT_LT(type.size(), 200u);
  EXPECT_THAT(ErrorOf(R"({"name": ")" + std::string(5000, 'n') + R"(", "model": 5})"),
              HasSubstr("'model' must be a string (a built-in name or a TorchScript path) or an object, got 5"));
}

TEST(ExperimentConfigTest, DuplicateKeysAreRefusedNotLastWins) {
  EXPECT_THAT(ErrorOf(R"({"rounds": 3, "fit": {"learning_rate": 0.1}, "rounds": 300})"),
              HasSubstr("key 'rounds' appears twice"));
  EXPECT_THAT(ErrorOf(R"({"strategy": {"name": "fedavg", "name": "krum"}})"),
              HasSubstr("key 'strategy.name' appears twice"));
}

TEST(ListenAddressTest, PortsThatWouldWrapAndMalformedHostsAreRefused) {
  for (const char* bad :
       {"127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:4294967297",
        "127.0.0.1:", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1: 80",
        "127.0.0.1:0x50", "127.0.0.1", ":50051", "300.1.1.1:80", "1.2.3:80",
        "::1:80", "[nope]:80", "bad host:80", "-x:80", "h\xff:80", ""}) {
    EXPECT_FALSE(ValidateListenAddress(bad).ok()) << bad;
  }
  for (const char* good :
       {"127.0.0.1:50051", "0.0.0.0:0", "[::]:65535", "[::1]:80",
        "localhost:50051", "fl.example.com:443"}) {
    EXPECT_TRUE(ValidateListenAddress(good).ok()) << good;
  }
  absl::StatusOr<HostPort> v6 = ParseListenAddress("[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  EXPECT_THAT(std::string(ValidateListenAddress("127.0.0.1:65536").message()),
              HasSubstr("from 0 to 65535"));
  EXPECT_THAT(std::string(ValidateListenAddress("127.0.0.1:").message()),
              HasSubstr("no port"));
  // A long value is cut short in the message.
  EXPECT_LT(
      ValidateListenAddress(std::string(100000, 'a') + ":1:2").message().size(),
      300u);
}

TEST(ExperimentConfigTest, ServerAddressIsValidatedNamingTheKey) {
  EXPECT_THAT(ErrorOf(R"({"server": {"address": "127.0.0.1:99999"}})"),
              HasSubstr("'server.address'"));
  EXPECT_THAT(ErrorOf(R"({"server": {"address": "127.0.0.1:4294967297"}})"),
              HasSubstr("from 0 to 65535"));
  EXPECT_THAT(ErrorOf(R"({"server": {"address": "127.0.0.1:"}})"),
              HasSubstr("no port"));
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(
      R"({"server": {"address": "[::]:50051"}})", "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->address, "[::]:50051");
}

TEST(ExperimentConfigTest, MalformedJsonAndMissingFileAreClearErrors) {
  EXPECT_NE(ErrorOf("{\"rounds\": ").find("not valid JSON"), std::string::npos);
  absl::StatusOr<ExperimentConfig> c = LoadExperimentConfig("/nonexistent/exp.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/exp.json"), std::string::npos);
}

TEST(ExperimentConfigTest, PrivacySectionWrapsTheStrategyAndIsChecked) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(
      R"({"strategy": {"name": "fedadam"},
          "privacy": {"clipping": "client", "noise_multiplier": 0.8, "population": 100}})",
      "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->privacy.has_value());
  EXPECT_DOUBLE_EQ(c->privacy->noise_multiplier, 0.8);
  absl::StatusOr<std::unique_ptr<Strategy>> strategy = CreateExperimentStrategy(*c);
  ASSERT_TRUE(strategy.ok()) << strategy.status();
  EXPECT_EQ((*strategy)->name(), "dp-client(fedadam)");
  EXPECT_FALSE((*strategy)->AggregatesByMean());  // privacy and secure rounds do not mix

  EXPECT_NE(ErrorOf(R"({"privacy": {"noise": 1}})").find("privacy.noise"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"privacy": {"noise_multiplier": -1}})").find("privacy.noise_multiplier"),
            std::string::npos);
  // A strategy that does not average updates cannot be made private.
  c = ParseExperimentConfig(R"({"strategy": {"name": "fedmedian"}, "privacy": {}})", "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<std::unique_ptr<Strategy>> refused = CreateExperimentStrategy(*c);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("fedmedian"), std::string::npos) << refused.status();
}

TEST(ExperimentConfigTest, PartialFineTuningPatternsAreRead) {
  absl::StatusOr<ExperimentConfig> c =
      ParseExperimentConfig(R"({"fit": {"train_only": ["fc2.*", "fc1.bias"]}})", "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->coordinator.train_only, (std::vector<std::string>{"fc2.*", "fc1.bias"}));
  EXPECT_THAT(ErrorOf(R"({"fit": {"freeze": ["a"], "train_only": ["b"]}})"),
              HasSubstr("not both"));
  EXPECT_THAT(ErrorOf(R"({"fit": {"freeze": "conv*"}})"), HasSubstr("fit.freeze"));
  EXPECT_THAT(ErrorOf(R"({"fit": {"freeze": [""]}})"), HasSubstr("1 to 256 characters"));
  c = ParseExperimentConfig(R"({"fit": {"personal": ["bn*"]}})", "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->coordinator.personal, (std::vector<std::string>{"bn*"}));
  // Checked against the model when the server side is prepared, before any
  // run is queued or started.
  c = ParseExperimentConfig(
      R"({"model": {"name": "logreg", "input_shape": [1, 28, 28], "outputs": 10},
          "server": {"evaluate": false}, "fit": {"personal": ["bn*"]}})",
      "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<ServerSide> side = PrepareServerSide(*c);
  ASSERT_FALSE(side.ok());
  EXPECT_THAT(std::string(side.status().message()),
              HasSubstr("fit.personal pattern 'bn*' matches no tensor"));
  c->coordinator.personal = {"fc.*"};
  EXPECT_TRUE(PrepareServerSide(*c).ok());
}

TEST(ExperimentConfigTest, CompressionSectionIsReadAndRefusedWhereItCannotWork) {
  absl::StatusOr<ExperimentConfig> c = ParseExperimentConfig(
      R"({"compression": {"upload": "topk", "topk_fraction": 0.02, "block": 128}})", "exp.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->coordinator.compression.kind, Compression::kTopK);
  EXPECT_DOUBLE_EQ(c->coordinator.compression.fraction, 0.02);
  EXPECT_EQ(c->coordinator.compression.block, 128);
  EXPECT_TRUE(ParseExperimentConfig("{}", "exp.json")->coordinator.compression.kind ==
              Compression::kNone);

  EXPECT_THAT(ErrorOf(R"({"compression": {"upload": "q2"}})"),
              HasSubstr("'compression.upload': unknown compression 'q2'"));
  EXPECT_THAT(ErrorOf(R"({"compression": {"topk_fraction": 0}})"),
              HasSubstr("compression.topk_fraction"));
  EXPECT_THAT(ErrorOf(R"({"compression": {"blocks": 1}})"), HasSubstr("compression.blocks"));
  EXPECT_THAT(ErrorOf(R"({"compression": {"upload": "q4"}, "secure_aggregation": {}})"),
              HasSubstr("cannot be combined with secure aggregation"));

  // Refused by the strategy, naming it, when the strategy is built.
  auto refusal = [](const std::string& text) {
    absl::StatusOr<ExperimentConfig> config = ParseExperimentConfig(text, "exp.json");
    EXPECT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Strategy>> s = CreateExperimentStrategy(*config);
    return s.ok() ? std::string("accepted") : std::string(s.status().message());
  };
  EXPECT_THAT(refusal(R"({"strategy": {"name": "krum"}, "compression": {"upload": "topk"}})"),
              HasSubstr("'compression': strategy 'krum'"));
  EXPECT_EQ(refusal(R"({"strategy": {"name": "krum"}, "compression": {"upload": "q8"}})"),
            "accepted");
  EXPECT_THAT(refusal(R"({"privacy": {"clipping": "client"}, "compression": {"upload": "q8"}})"),
              HasSubstr("client clipping"));
  EXPECT_EQ(refusal(R"({"privacy": {"clipping": "server"}, "compression": {"upload": "topk"}})"),
            "accepted");
}

}  // namespace
}  // namespace shoal
