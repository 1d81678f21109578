// ExperimentConfig: one JSON file describes a run, read by the server and by
// every client (each takes what concerns it). Every key is documented in
// docs/configuration.md; unknown keys are errors naming the key.
#ifndef SHOAL_CLI_EXPERIMENT_CONFIG_H_
#define SHOAL_CLI_EXPERIMENT_CONFIG_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/data/source.h"
#include "client/model.h"
#include "client/task.h"
#include "server/coordinator.h"
#include "shoal/v1/shoal.pb.h"
#include "simulation/population.h"
#include "simulation/simulator.h"
#include "strategies/differential_privacy.h"
#include "strategies/strategy.h"

namespace shoal {

// SimulationConfig: the "simulation" section, read by `shoal sim` only.
struct SimulationConfig {
  // Registered virtual clients; 0 = data.num_partitions.
  uint64_t clients = 0;
  // 0: the training set is split among the clients (each example belongs to
  // one). > 0: each client draws this many examples of its own (mean size
  // for quantity_skew), so the population may outgrow the data.
  int64_t examples_per_client = 0;
  simulation::SimulationOptions options;     // workers, dropouts, deadline
  simulation::PopulationOptions population;  // speeds, availability, trace
};

// MetricsConfig: "server.metrics", the telemetry endpoint (Prometheus
// /metrics; docs/observability.md). Empty `listen`: none.
struct MetricsConfig {
  std::string listen;      // "host:port"; loopback unless TLS and a token
  std::string token_file;  // the bearer token scrapers send; required off loopback
  // After the run, the endpoint stays up this long, so scrapers read the
  // last round's figures.
  double linger_s = 5;
};

// ServingConfig: "server.serving", the fleet's serving versions
// (docs/lifecycle.md). Empty `dir`: the server offers none.
struct ServingConfig {
  std::string dir;            // the serving catalog's folder
  bool auto_promote = false;  // promote a run's final model that beats the serving one
  double margin = 0.01;       // by this much (accuracy points; RMSE for regression)
  double canary_fraction = 0.1;
  int64_t min_canary_reports = 3;
  double max_canary_refusals = 0;
  double canary_margin = 0.01;
  double canary_deadline_s = 3600;
};

struct ExperimentConfig {
  std::string name = "fashion-mnist";
  uint64_t seed = 42;
  // "model": a built-in name or TorchScript path, or an object with "name"
  // (or "path"), "hidden", "input_shape" and "outputs". Shapes left out come
  // from the data (ResolveModel).
  client::ModelSpec model;
  // "task": what the model learns (loss and metrics).
  client::TaskOptions task;
  int64_t num_classes = 0;  // task.num_classes; 0 = from the data

  // strategy
  std::string strategy = "fedavg";
  nlohmann::json strategy_params = nlohmann::json::object();
  // privacy: differential privacy around the strategy, when present
  std::optional<DifferentialPrivacyOptions> privacy;

  // fit: sent to clients every round
  v1::FitConfig fit;

  // rounds, sampling and timeouts
  CoordinatorOptions coordinator;

  // data (client side)
  client::DataOptions data;  // format, location, normalization
  client::PartitionOptions partition;
  double holdout_fraction = 0.1;  // of each client's data, for Evaluate

  // server side
  std::string address = "127.0.0.1:50051";
  std::string output_dir = "runs/fashion-mnist";
  bool server_evaluation = true;  // evaluate on the test split every round
  // compression.download "delta": devices holding an earlier version fetch
  // the change from it (FederationServerOptions::delta_downloads).
  bool delta_downloads = false;
  uint32_t threads = 0;           // LibTorch intra-op threads; 0 = cores
  ServingConfig serving;
  MetricsConfig metrics;

  SimulationConfig simulation;

  ExperimentConfig();
};

// ParseExperimentConfig validates `text` (JSON) fully: unknown keys, wrong
// types and out-of-range values are InvalidArgument naming the key, e.g.
// "config.json: unknown key 'fit.lr' (known: local_epochs, batch_size, ...)".
// Absent keys keep their defaults.
absl::StatusOr<ExperimentConfig> ParseExperimentConfig(const std::string& text,
                                                       const std::string& source);
absl::StatusOr<ExperimentConfig> LoadExperimentConfig(const std::string& path);

// CreateExperimentStrategy builds the config's strategy by name, wrapped in
// differential privacy when the config has a "privacy" section; errors name
// the offending key.
absl::StatusOr<std::unique_ptr<Strategy>> CreateExperimentStrategy(const ExperimentConfig& config);

// ServerSide: the server half of a run, built from the config: the strategy
// (evaluating on the test split when server.evaluate is on), the initial
// global model (the strategy's own, or the model's seeded initialization)
// and the model's canonical spec with its shapes (what the model store
// records and devices build).
struct ServerSide {
  std::unique_ptr<Strategy> strategy;
  Parameters initial;
  client::ModelSpec model;
};
absl::StatusOr<ServerSide> PrepareServerSide(const ExperimentConfig& config);

// ResolveModel returns the config's model spec with the shapes `data`
// implies (input shape; outputs from the task), checked against any the
// config states; errors name 'model' or the data.
absl::StatusOr<client::ModelSpec> ResolveModel(const ExperimentConfig& config,
                                               const client::Dataset& data);
absl::StatusOr<client::ModelSpec> ResolveModel(const ExperimentConfig& config,
                                               const client::ExampleSource& data);

// MakeTestSetEvaluator evaluates `spec` on the config's test split: the
// server-side evaluation of every round.
absl::StatusOr<ServerEvaluator> MakeTestSetEvaluator(const ExperimentConfig& config,
                                                     const client::ModelSpec& spec,
                                                     client::Dataset test);

// FingerprintedConfig is the part of the config file at `config_path` (an
// empty path: no file, `{}`) that a resumed run must share with the run that
// wrote the checkpoint (FederationServerOptions::fingerprint_config). Left
// out: "rounds" (a restart may run more or fewer rounds), "server" (where and
// how this process runs: address, output dir, threads, transport security)
// and "simulation" (read by `shoal sim` only). Everything else changes what
// the rounds compute. The file as written, not the parsed config: a key
// stated with its default value counts as a difference. Errors: those of
// reading the file; InvalidArgument when it is not a JSON object.
absl::StatusOr<nlohmann::json> FingerprintedConfig(const std::string& config_path);
// FingerprintedConfigText is FingerprintedConfig of config text (`source`
// names it in errors).
absl::StatusOr<nlohmann::json> FingerprintedConfigText(const std::string& text,
                                                       const std::string& source);

}  // namespace shoal

#endif  // SHOAL_CLI_EXPERIMENT_CONFIG_H_
