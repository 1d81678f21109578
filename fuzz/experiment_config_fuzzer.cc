// Config files: ParseExperimentConfig (cli/experiment_config.h) on arbitrary
// text, then CreateExperimentStrategy, which reads the "strategy" and
// "privacy" sections' parameters. Both run on a file an operator may have
// copied from anywhere, before any check by a person.
//
// Properties: nothing crashes (no uncaught nlohmann::json exception, no UB
// in the range checks); a config that parses has values in the documented
// ranges that CoordinatorOptions::Validate accepts.
//
// Input: the file's text, through ExpandRepeats (fuzz/fuzz_support.h) so
// that deep nesting and long values are in reach.
#include <cstdint>
#include <string>
#include <vector>

#include "experiment/experiment_config.h"
#include "fuzz/fuzz_support.h"

namespace shoal::fuzz {
namespace {

std::vector<std::string> Seeds() {
  return {
      R"({})",
      R"({"name": "f", "seed": 7, "model": "2nn", "rounds": 3,
          "strategy": {"name": "fedadam", "eta": 0.01, "beta_1": 0.9},
          "fit": {"local_epochs": 2, "batch_size": 16, "learning_rate": 0.1,
                  "momentum": 0, "weight_decay": 0.0001},
          "sampling": {"fraction_fit": 0.5, "min_fit_clients": 2, "min_available_clients": 3},
          "timeouts": {"round_s": 30, "wait_for_clients_s": 60},
          "data": {"dir": "/tmp/d", "partitioner": "dirichlet", "num_partitions": 10,
                   "alpha": 0.3, "seed": 1, "holdout_fraction": 0.2},
          "server": {"address": "127.0.0.1:0", "output_dir": "/tmp/o", "evaluate": false,
                     "threads": 1},
          "target_accuracy": 0.9})",
      R"({"strategy": {"name": "fedavg"},
          "privacy": {"clipping": "client", "noise_multiplier": 0.8, "population": 100}})",
      R"({"strategy": {"name": "fedtrimmedavg", "beta": 0.2}, "model": "logreg",
          "privacy": {"clipping": "server", "adaptive": true, "target_quantile": 0.5}})",
      R"({"secure_aggregation": {"enabled": true, "clip": 2, "bits": 16, "modulus_bits": 40,
          "max_weight": 1000, "dropout_rate": 0.2, "adversary_rate": 0.1,
          "security_bits": 40, "correctness_bits": 20, "stage_timeout_s": 30},
          "sampling": {"min_fit_clients": 10}})",
      R"({"simulation": {"clients": 1000, "examples_per_client": 60, "workers": 2,
          "speed": {"distribution": "lognormal", "median": 50, "sigma": 0.7},
          "availability": {"kind": "diurnal", "period_s": 86400, "online_fraction": 0.4},
          "trace": "trace.csv", "trace_period_s": 3600,
          "dropout_fraction": 0.05, "bandwidth_mbps": 10, "deadline_s": 120},
          "data": {"partitioner": "quantity_skew", "power_law_exponent": 1.5,
                   "min_partition_size": 5, "classes_per_client": 2}})",
      R"({"strategy": {"name": "krum", "num_malicious": 1}, "rounds": 1000000,
          "simulation": {"speed": {"distribution": "uniform", "min": 1, "max": 2},
                         "availability": {"kind": "random", "probability": 0.5}}})",
      R"({"strategy": {"name": "scaffold"}, "model": "model.pt", "seed": 18446744073709551615})",
      // Issue 14: nesting that overflowed the stack, a long value, a
      // duplicate key.
      R"({"rounds": {{100000*[}}1{{100000*]}}})",
      R"({"name": "{{20000*n}}", "model": ["{{30000*m}}"]})",
      R"({"rounds": 3, "fit": {"batch_size": 8, "batch_size": 9}})",
      // Issue 15: the model object, tasks, data formats and normalization.
      R"({"model": {"name": "mlp", "hidden": [64, 32], "input_shape": [30], "outputs": 1},
          "task": {"kind": "regression", "loss": "l1"},
          "data": {"format": "csv", "train": "t.csv.gz", "test_fraction": 0.2,
                   "csv": {"target": ["a", "b"], "ignore": "id", "skip_lines": 1,
                           "header": false, "column_names": ["id", "a", "b", "c"],
                           "delimiter": " ", "targets_file": "y.csv"},
                   "normalize": "auto", "partitioner": "iid"}})",
      R"({"model": {"path": "net.pt", "input_shape": [3, 32, 32]},
          "task": {"kind": "binary", "num_classes": 2},
          "data": {"format": "image_folder", "train": "imgs/train", "test": "imgs/test",
                   "image": {"height": 32, "width": 32, "channels": 3, "resize": true},
                   "normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.25]}}})",
      R"({"model": "cnn-1x28x28-10", "task": {"kind": "classification"},
          "data": {"format": "torch", "train": "train.pt", "test": "test.pt",
                   "normalize": {"mean": 0.286, "std": 0.353}}})",
  };
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  const std::string text =
      ExpandRepeats(absl::string_view(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<ExperimentConfig> config = ParseExperimentConfig(text, "fuzz.json");
  if (!config.ok()) return 0;
  Check(config->coordinator.Validate().ok(), "a parsed config fails its own validation");
  Check(config->coordinator.num_rounds >= 1, "a parsed config has no rounds");
  // Strategy construction reads the strategy's own parameters; building the
  // initial model or loading data is not parsing, and is left out.
  (void)CreateExperimentStrategy(*config);
  return 0;
}
