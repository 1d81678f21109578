// `shoal export` and `shoal infer` against PyTorch: a model trained by
// `shoal sim`, exported, and evaluated back in Python (Debian's
// python3-torch) must score what Shoal's own evaluation scored, on the same
// examples normalized the same way. Real processes throughout.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kData[] = "/usr/share/datasets/fashion-mnist";
constexpr double kMean = 0.2860;
constexpr double kStd = 0.3530;

std::string TestImages() { return absl::StrCat(kData, "/t10k-images-idx3-ubyte.gz"); }
std::string TestLabels() { return absl::StrCat(kData, "/t10k-labels-idx1-ubyte.gz"); }

// RunProcess runs `argv` to completion (3 minutes at most) and returns its exit
// code; its stdout and stderr go to `log`, or stdout alone to `out` when
// given (through /bin/sh, so machine-readable output can be parsed alone).
int RunProcess(const std::vector<std::string>& argv, const std::string& log, std::string* text,
               const std::string& out = "") {
  std::vector<std::string> command = argv;
  if (!out.empty()) {
    std::string line = "exec";
    for (const std::string& a : argv) absl::StrAppend(&line, " '", a, "'");
    absl::StrAppend(&line, " >'", out, "'");
    command = {"/bin/sh", "-c", line};
  }
  testing::Subprocess p(command, log);
  const int code = p.Wait(absl::Seconds(180));
  if (text != nullptr) *text = p.Log();
  return code;
}

// NumbersAfter returns the whole numbers after `prefix` on the line starting
// with it: "python accuracy 8123 10000" -> {8123, 10000}.
std::vector<int64_t> NumbersAfter(const std::string& log, const std::string& prefix) {
  std::vector<int64_t> out;
  const size_t at = log.rfind(prefix);
  if (at == std::string::npos) return out;
  const std::string line = log.substr(at + prefix.size(), log.find('\n', at) - at - prefix.size());
  for (absl::string_view word : absl::StrSplit(line, absl::ByAnyChar(" ()"), absl::SkipEmpty())) {
    int64_t v = 0;
    if (absl::SimpleAtoi(word, &v)) out.push_back(v);
  }
  return out;
}

class ExportRoundTripTest : public ::testing::Test {
 protected:
  // Train writes a config for `model` on Fashion-MNIST, normalized with its
  // mean and std, and runs two rounds of `shoal sim` on it.
  void Train(const std::string& model) {
    const json config{{"name", "export-test"},
                      {"seed", 11},
                      {"model", model},
                      {"rounds", 2},
                      {"fit", {{"local_epochs", 1}, {"batch_size", 32}, {"learning_rate", 0.05}}},
                      {"sampling", {{"fraction_fit", 1.0}, {"min_fit_clients", 1}}},
                      {"data",
                       {{"format", "idx"},
                        {"dir", kData},
                        {"normalize", {{"mean", kMean}, {"std", kStd}}},
                        {"holdout_fraction", 0}}},
                      {"server", {{"output_dir", dir_.File("run")}}},
                      {"simulation", {{"clients", 4}, {"examples_per_client", 300}}}};
    ASSERT_TRUE(WriteFileAtomically(config_, config.dump(2)).ok());
    std::string log;
    ASSERT_EQ(RunProcess({SHOAL_BINARY, "sim", "--config", config_, "--workers", "2"},
                         dir_.File("sim.log"), &log),
              0)
        << log;
    const json metrics = json::parse(*ReadFile(dir_.File("run/metrics.json"), 1 << 24));
    const json& last = metrics["rounds"].back();
    shoal_accuracy_ = last["test_accuracy"].get<double>();
    ASSERT_EQ(ReadModelRecord(models_)->version, last["model_version"].get<int64_t>());
  }

  // PythonAccuracy evaluates an export in PyTorch; {correct, n}.
  std::vector<int64_t> PythonAccuracy(const std::string& exported, const std::string& module) {
    std::vector<std::string> argv = {
        "/usr/bin/python3", absl::StrCat(SHOAL_SOURCE_DIR, "/tests/export_roundtrip.py"),
        exported,           TestImages(),
        TestLabels(),       absl::StrCat(kMean),
        absl::StrCat(kStd)};
    if (!module.empty()) argv.insert(argv.end(), {"--module", module});
    std::string log;
    EXPECT_EQ(RunProcess(argv, dir_.File("python.log"), &log), 0) << log;
    return NumbersAfter(log, "python accuracy ");
  }

  // ShoalInferAccuracy: `shoal infer` with the config on the same data;
  // {correct, n}.
  std::vector<int64_t> ShoalInferAccuracy() {
    std::string log;
    EXPECT_EQ(RunProcess({SHOAL_BINARY, "infer", "--insecure-unverified", "--model-dir", models_,
                          "--config", config_, "--input", TestImages(), "--labels", TestLabels()},
                         dir_.File("infer.log"), &log),
              0)
        << log;
    return NumbersAfter(log, "accuracy: ");
  }

  // Check: Python's accuracy is Shoal's evaluation's and `shoal infer`'s.
  void ExpectSameAccuracy(const std::vector<int64_t>& python) {
    ASSERT_EQ(python.size(), 2u);
    EXPECT_EQ(python[1], 10000);
    const double python_accuracy = static_cast<double>(python[0]) / static_cast<double>(python[1]);
    EXPECT_NEAR(python_accuracy, shoal_accuracy_, 1e-6);
    EXPECT_GT(python_accuracy, 0.3);  // it did learn: the weights are the trained ones
    const std::vector<int64_t> infer = ShoalInferAccuracy();
    // "accuracy: 81.23% (8123 of 10000)": the counts.
    EXPECT_EQ(infer, python);
  }

  // Export runs `shoal export` (unverified) on the run's models with
  // `args`; returns its exit code and its output in `log`.
  int Export(const std::vector<std::string>& args, std::string* log) {
    std::vector<std::string> argv = {SHOAL_BINARY, "export", "--insecure-unverified", "--model-dir",
                                     models_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, dir_.File("export.log"), log);
  }

  testing::TempDir dir_;
  std::string config_ = dir_.File("config.json");
  std::string models_ = dir_.File("run/models");
  double shoal_accuracy_ = -1;
};

TEST_F(ExportRoundTripTest, ABuiltinLoadsIntoTheGeneratedPythonClassWithShoalsAccuracy) {
  ASSERT_NO_FATAL_FAILURE(Train("2nn"));
  std::string log;
  ASSERT_EQ(Export({"--output", dir_.File("net.pt")}, &log), 0) << log;
  EXPECT_THAT(log, HasSubstr("import net; model = net.load("));
  ExpectSameAccuracy(PythonAccuracy(dir_.File("net.pt"), dir_.File("net.py")));
}

TEST_F(ExportRoundTripTest, ATorchScriptModelExportsWithItsTrainedWeights) {
  ASSERT_NO_FATAL_FAILURE(Train(SHOAL_TINY_TORCHSCRIPT));
  std::string log;
  ASSERT_EQ(Export({"--output", dir_.File("scripted.pt")}, &log), 0) << log;
  EXPECT_THAT(log, HasSubstr("torch.jit.load"));
  ExpectSameAccuracy(PythonAccuracy(dir_.File("scripted.pt"), ""));
  // An earlier version is another model: the initial one scores otherwise.
  ASSERT_EQ(Export({"--version", "0", "--output", dir_.File("initial.pt")}, &log), 0) << log;
  EXPECT_NE(PythonAccuracy(dir_.File("initial.pt"), ""),
            PythonAccuracy(dir_.File("scripted.pt"), ""));
}

TEST_F(ExportRoundTripTest, BadExportsAreRefusedWithExitTwoNamingWhy) {
  ASSERT_NO_FATAL_FAILURE(Train("logreg"));
  struct Case {
    std::vector<std::string> extra;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"--insecure-unverified", "--version", "99", "--output", dir_.File("x.pt")},
       "no model version 99"},
      {{"--insecure-unverified", "--output", dir_.File("missing/x.pt")},
       "the folder '" + dir_.File("missing") + "' does not exist"},
      {{"--insecure-unverified", "--output", dir_.File("x.py")}, "would be overwritten"},
      {{"--output", dir_.File("x.pt")}, "--model-key"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {SHOAL_BINARY, "export", "--model-dir", models_};
    argv.insert(argv.end(), c.extra.begin(), c.extra.end());
    std::string log;
    EXPECT_EQ(RunProcess(argv, dir_.File("bad.log"), &log), 2) << log;
    EXPECT_THAT(log, HasSubstr(c.expect));
    std::remove(dir_.File("bad.log").c_str());
  }
  EXPECT_FALSE(ReadFile(dir_.File("x.pt")).ok());
}

TEST_F(ExportRoundTripTest, InferWritesWellFormedCsvAndJsonLinesAndNamesARefusedShape) {
  ASSERT_NO_FATAL_FAILURE(Train("logreg"));
  const std::vector<std::string> infer = {SHOAL_BINARY,  "infer",     "--insecure-unverified",
                                          "--model-dir", models_,     "--config",
                                          config_,       "--input",   TestImages(),
                                          "--labels",    TestLabels()};
  std::string log;
  std::vector<std::string> csv_argv = infer;
  csv_argv.insert(csv_argv.end(), {"--output", "csv", "--limit", "5"});
  ASSERT_EQ(RunProcess(csv_argv, dir_.File("csv.log"), &log, dir_.File("out.csv")), 0) << log;
  EXPECT_THAT(log, HasSubstr("accuracy: "));  // on stderr, not in the CSV
  const std::vector<std::string> rows =
      absl::StrSplit(*ReadFile(dir_.File("out.csv")), '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0], "index,class,probability");
  for (size_t i = 1; i < rows.size(); ++i) {
    const std::vector<std::string> cells = absl::StrSplit(rows[i], ',');
    ASSERT_EQ(cells.size(), 3u) << rows[i];
    int64_t index = -1, cls = -1;
    double probability = -1;
    EXPECT_TRUE(absl::SimpleAtoi(cells[0], &index) && index == static_cast<int64_t>(i) - 1);
    EXPECT_TRUE(absl::SimpleAtoi(cells[1], &cls) && cls >= 0 && cls < 10) << rows[i];
    EXPECT_TRUE(absl::SimpleAtod(cells[2], &probability) && probability >= 0.1 && probability <= 1)
        << rows[i];  // the most likely of 10 classes
  }

  std::vector<std::string> jsonl_argv = infer;
  jsonl_argv.insert(jsonl_argv.end(), {"--output", "jsonl"});
  ASSERT_EQ(RunProcess(jsonl_argv, dir_.File("jsonl.log"), &log, dir_.File("out.jsonl")), 0) << log;
  const std::vector<std::string> lines =
      absl::StrSplit(*ReadFile(dir_.File("out.jsonl"), 1 << 24), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 10000u);  // every example by default
  for (size_t i = 0; i < lines.size(); i += 997) {
    const json j = json::parse(lines[i]);
    EXPECT_EQ(j["index"].get<int64_t>(), static_cast<int64_t>(i));
    EXPECT_GE(j["class"].get<int64_t>(), 0);
    EXPECT_LE(j["probability"].get<double>(), 1.0);
  }

  // 8 x 8 images for a model of 28 x 28 ones: exit 2, naming file and shape.
  std::string idx("\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x08\x00\x00\x00\x08", 16);
  idx.append(2 * 8 * 8, '\x10');
  ASSERT_TRUE(WriteFileAtomically(dir_.File("small-idx3-ubyte"), idx).ok());
  ASSERT_EQ(RunProcess({SHOAL_BINARY, "infer", "--insecure-unverified", "--model-dir", models_,
                        "--config", config_, "--input", dir_.File("small-idx3-ubyte")},
                       dir_.File("shape.log"), &log),
            2)
      << log;
  EXPECT_THAT(log, HasSubstr(dir_.File("small-idx3-ubyte")));
  EXPECT_THAT(log, HasSubstr("inputs of shape [2, 1, 8, 8]"));
  EXPECT_THAT(log, Not(HasSubstr("Exception raised from")));
}

}  // namespace
}  // namespace shoal
