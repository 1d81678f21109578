// RobustnessExperiment: federated runs on Fashion-MNIST in one process, some
// clients poisoning their updates, to measure what each strategy withstands.
// The clients are real LocalClients (real training on their own IID shard)
// reached through an in-process ClientProxy, and rounds are run by the real
// Coordinator with server-side evaluation on the test set: only the network
// is missing. Shared by bench/robustness_experiment.cc (the table in
// docs/benchmarks.md) and tests/robustness_test.cc.
#ifndef SHOAL_BENCH_ROBUSTNESS_H_
#define SHOAL_BENCH_ROBUSTNESS_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/attack.h"
#include "client/data/dataset.h"
#include "client/local_client.h"
#include "common/parameters.h"

namespace shoal::bench {

// RobustnessOptions. The defaults run one trial of 5 rounds in a few
// seconds on one core.
struct RobustnessOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  // n clients, of which the first f (client-00, client-01, ...) poison their
  // updates in an attacked trial. Every client answers every round.
  int num_clients = 11;
  int num_malicious = 2;
  // Each client trains on its own IID shard of this many training examples
  // (num_clients * examples_per_client may not exceed the 60,000 of the
  // training set).
  int64_t examples_per_client = 800;
  uint32_t rounds = 5;
  std::string model = "2nn";  // cnn, 2nn, logreg
  // Local training, as the experiment config's defaults.
  uint32_t local_epochs = 1;
  uint32_t batch_size = 32;
  double learning_rate = 0.05;
  double momentum = 0.9;
  // Seeds the initial model, the shards and shuffling (the attackers' noise
  // is seeded by the AttackOptions given to Run).
  uint64_t seed = 42;

  // Validate returns InvalidArgument naming the first bad option.
  absl::Status Validate() const;
};

// TrialResult: one federated run.
struct TrialResult {
  // Test accuracy (fraction) of the global model after each round; [0] is
  // the initial model.
  std::vector<double> accuracy;
  double final_accuracy() const { return accuracy.back(); }
  double final_loss = 0;  // test cross-entropy of the final model
  // Results that did not count (a poisoned update is well-formed, but
  // honest clients training from a wrecked global model may diverge and
  // report an error), the reason given for the first, and the rounds that
  // left the model unchanged because of them.
  int64_t refused = 0;
  std::string first_refusal;
  int64_t rounds_unchanged = 0;
  double seconds = 0;
};

// StrategyParamsFor returns the parameters a robust strategy needs to
// tolerate f of n clients: krum, multikrum and bulyan get num_malicious f
// (multikrum averages the n - f best-scored updates), fedtrimmedavg trims f
// values from each side (beta = (f + 0.5) / n); other strategies get {}.
nlohmann::json StrategyParamsFor(const std::string& strategy, int num_clients,
                                 int num_malicious);

// RobustnessExperiment loads the data and builds the clients once; each
// Run() is one independent federated run from the same initial model.
// Not thread-safe.
class RobustnessExperiment {
 public:
  // Create validates `options`, loads Fashion-MNIST (train and test) from
  // options.data_dir, shards it and builds the clients. Errors name the
  // bad option or the missing file.
  static absl::StatusOr<std::unique_ptr<RobustnessExperiment>> Create(
      RobustnessOptions options);

  // Run trains options.rounds rounds with the registered strategy
  // `strategy` (parameters from StrategyParamsFor) while the first
  // num_malicious clients apply `attack` (attack.seed is offset per client
  // so that no two share their noise; mode kNone is the clean run).
  // InvalidArgument for an unknown strategy or parameters it refuses (e.g.
  // bulyan with n < 4f + 3); errors of the Coordinator otherwise.
  absl::StatusOr<TrialResult> Run(const std::string& strategy,
                                  const AttackOptions& attack);

  const RobustnessOptions& options() const { return options_; }

 private:
  explicit RobustnessExperiment(RobustnessOptions options)
      : options_(std::move(options)) {}

  RobustnessOptions options_;
  std::vector<std::unique_ptr<client::LocalClient>> clients_;
  client::Dataset test_;
  Parameters initial_;
};

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_ROBUSTNESS_H_
