#include "cli/experiment_config.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/data/dataset.h"
#include "client/dataset_evaluator.h"
#include "client/model.h"
#include "common/files.h"
#include "common/json.h"
#include "common/json_fields.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/status.h"
#include "strategies/registry.h"

namespace shoal::cli {
namespace {

using nlohmann::json;

constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

absl::Status ParseDistribution(JsonFields d, simulation::Distribution* out) {
  std::string kind = simulation::DistributionKindName(out->kind);
  SHOAL_RETURN_IF_ERROR(d.NonEmptyString("distribution", &kind));
  absl::StatusOr<simulation::Distribution::Kind> parsed = simulation::ParseDistributionKind(kind);
  if (!parsed.ok()) return Annotate(parsed.status(), d.Key("distribution"));
  out->kind = *parsed;
  constexpr double kBig = 1e12;
  SHOAL_RETURN_IF_ERROR(d.Number("value", 0, kBig, &out->value, true));
  SHOAL_RETURN_IF_ERROR(d.Number("min", 0, kBig, &out->min, true));
  SHOAL_RETURN_IF_ERROR(d.Number("max", 0, kBig, &out->max, true));
  SHOAL_RETURN_IF_ERROR(d.Number("median", 0, kBig, &out->median, true));
  SHOAL_RETURN_IF_ERROR(d.Number("sigma", 0, 10, &out->sigma));
  SHOAL_RETURN_IF_ERROR(d.Finish());
  return out->Validate(d.path());
}

absl::Status ParseAvailability(JsonFields a, simulation::AvailabilityOptions* out) {
  std::string kind = simulation::AvailabilityKindName(out->kind);
  SHOAL_RETURN_IF_ERROR(a.NonEmptyString("kind", &kind));
  absl::StatusOr<simulation::AvailabilityOptions::Kind> parsed =
      simulation::ParseAvailabilityKind(kind);
  if (!parsed.ok()) return Annotate(parsed.status(), a.Key("kind"));
  out->kind = *parsed;
  SHOAL_RETURN_IF_ERROR(a.Number("probability", 0, 1, &out->probability, true));
  SHOAL_RETURN_IF_ERROR(a.Number("period_s", 0, 1e9, &out->period_s, true));
  SHOAL_RETURN_IF_ERROR(a.Number("online_fraction", 0, 1, &out->online_fraction, true));
  SHOAL_RETURN_IF_ERROR(a.Finish());
  return Annotate(out->Validate(), a.path());
}

absl::Status ParseSimulation(JsonFields& root, ExperimentConfig& c) {
  SimulationConfig& sim = c.simulation;
  sim.options.seed = c.seed;
  sim.population.seed = c.seed;
  sim.options.holdout_fraction = c.holdout_fraction;
  if (!root.Has("simulation")) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("simulation"));
  SHOAL_RETURN_IF_ERROR(s.Integer("clients", 1, int64_t{1} << 32, &sim.clients));
  SHOAL_RETURN_IF_ERROR(s.Integer("examples_per_client", 1, int64_t{1} << 31,
                                  &sim.examples_per_client));
  SHOAL_RETURN_IF_ERROR(s.Integer("workers", 0, 1024, &sim.options.workers));
  if (s.Has("speed")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields speed, s.Object("speed"));
    SHOAL_RETURN_IF_ERROR(ParseDistribution(std::move(speed), &sim.population.speed));
  }
  if (s.Has("availability")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields availability, s.Object("availability"));
    SHOAL_RETURN_IF_ERROR(ParseAvailability(std::move(availability), &sim.population.availability));
  }
  SHOAL_RETURN_IF_ERROR(s.NonEmptyString("trace", &sim.population.trace_path));
  SHOAL_RETURN_IF_ERROR(s.Number("trace_period_s", 0, 1e9, &sim.population.trace_period_s));
  SHOAL_RETURN_IF_ERROR(s.Number("dropout_fraction", 0, 0.999, &sim.options.dropout_fraction));
  SHOAL_RETURN_IF_ERROR(s.Number("bandwidth_mbps", 0, 1e6, &sim.options.bandwidth_mbps));
  SHOAL_RETURN_IF_ERROR(s.Number("deadline_s", 0, 1e9, &sim.options.deadline_s));
  return s.Finish();
}

absl::Status ParseSecureAggregation(JsonFields& root, SecureAggregationOptions& out) {
  if (!root.Has("secure_aggregation")) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("secure_aggregation"));
  out.enabled = true;  // a section turns it on unless it says otherwise
  SHOAL_RETURN_IF_ERROR(s.Bool("enabled", &out.enabled));
  SHOAL_RETURN_IF_ERROR(s.Number("clip", 0, 1e6, &out.encoding.values.clip, true));
  SHOAL_RETURN_IF_ERROR(s.Integer("bits", 1, 32, &out.encoding.values.bits));
  int modulus_bits = 0;
  for (uint64_t m = out.encoding.values.modulus; m > 1; m >>= 1) ++modulus_bits;
  SHOAL_RETURN_IF_ERROR(s.Integer("modulus_bits", 2, 62, &modulus_bits));
  out.encoding.values.modulus = uint64_t{1} << modulus_bits;
  SHOAL_RETURN_IF_ERROR(s.Integer("max_weight", 1, kMaxInt, &out.encoding.max_weight));
  SHOAL_RETURN_IF_ERROR(s.Number("dropout_rate", 0, 0.99, &out.graph.dropout_rate));
  SHOAL_RETURN_IF_ERROR(s.Number("adversary_rate", 0, 0.99, &out.graph.adversary_rate));
  SHOAL_RETURN_IF_ERROR(s.Integer("security_bits", 1, 256, &out.graph.security_bits));
  SHOAL_RETURN_IF_ERROR(s.Integer("correctness_bits", 1, 256, &out.graph.correctness_bits));
  double stage_s = absl::ToDoubleSeconds(out.stage_timeout);
  SHOAL_RETURN_IF_ERROR(s.Number("stage_timeout_s", 0, 1e6, &stage_s, true));
  out.stage_timeout = absl::Seconds(stage_s);
  SHOAL_RETURN_IF_ERROR(s.Finish());
  // Options are checked together (e.g. codes that cannot fit the modulus).
  return out.Validate();
}

absl::Status ParseSections(JsonFields& root, ExperimentConfig& c) {
  if (!root.object().is_object()) return root.Finish();  // "the config must be an object"
  SHOAL_RETURN_IF_ERROR(ParseSecureAggregation(root, c.coordinator.secure_aggregation));
  SHOAL_RETURN_IF_ERROR(root.NonEmptyString("name", &c.name));
  SHOAL_RETURN_IF_ERROR(root.Integer("seed", 0, std::numeric_limits<int64_t>::max(), &c.seed));
  SHOAL_RETURN_IF_ERROR(root.Integer("rounds", 1, kMaxRounds, &c.coordinator.num_rounds));
  SHOAL_RETURN_IF_ERROR(root.Number("target_accuracy", 0, 1, &c.coordinator.target_accuracy));
  SHOAL_RETURN_IF_ERROR(root.NonEmptyString("model", &c.model));
  SHOAL_RETURN_IF_ERROR(Annotate(client::ParseModelSpec(c.model).status(), "'model'"));

  if (root.Has("strategy")) {
    const json& s = root.Raw("strategy");
    if (!s.is_object() || !s.contains("name") || !s.at("name").is_string()) {
      return absl::InvalidArgumentError(
          "'strategy' must be an object with a string 'name', e.g. {\"name\": \"fedavg\"}");
    }
    c.strategy = s.at("name").get<std::string>();
    c.strategy_params = s;
    c.strategy_params.erase("name");
  }
  if (root.Has("privacy")) {
    const json& p = root.Raw("privacy");
    if (!p.is_object()) {
      return absl::InvalidArgumentError("'privacy' must be an object, e.g. {\"noise_multiplier\": 1.0}");
    }
    SHOAL_ASSIGN_OR_RETURN(c.privacy, ParseDifferentialPrivacyOptions(p));
  }

  if (root.Has("fit")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields fit, root.Object("fit"));
    uint32_t epochs = c.fit.local_epochs(), batch = c.fit.batch_size();
    double lr = c.fit.learning_rate(), momentum = c.fit.momentum(),
           wd = c.fit.weight_decay();
    SHOAL_RETURN_IF_ERROR(fit.Integer("local_epochs", 1, 1000, &epochs));
    SHOAL_RETURN_IF_ERROR(fit.Integer("batch_size", 1, 1 << 20, &batch));
    SHOAL_RETURN_IF_ERROR(fit.Number("learning_rate", 0, 100, &lr, /*lo_open=*/true));
    SHOAL_RETURN_IF_ERROR(fit.Number("momentum", 0, 0.999, &momentum));
    SHOAL_RETURN_IF_ERROR(fit.Number("weight_decay", 0, 1, &wd));
    c.fit.set_local_epochs(epochs);
    c.fit.set_batch_size(batch);
    c.fit.set_learning_rate(lr);
    c.fit.set_momentum(momentum);
    c.fit.set_weight_decay(wd);
    SHOAL_RETURN_IF_ERROR(fit.Finish());
  }

  if (root.Has("sampling")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("sampling"));
    SHOAL_RETURN_IF_ERROR(
        s.Number("fraction_fit", 0, 1, &c.coordinator.sampling.fraction, true));
    SHOAL_RETURN_IF_ERROR(s.Integer("min_fit_clients", 1, kMaxInt, &c.coordinator.min_fit_clients));
    c.coordinator.min_available_clients = c.coordinator.min_fit_clients;
    SHOAL_RETURN_IF_ERROR(s.Integer("min_available_clients", 1, kMaxInt,
                                    &c.coordinator.min_available_clients));
    c.coordinator.sampling.min_clients = c.coordinator.min_fit_clients;
    SHOAL_RETURN_IF_ERROR(s.Integer("max_examples_per_client", 0,
                                    int64_t{1} << 53,
                                    &c.coordinator.max_examples_per_client));
    SHOAL_RETURN_IF_ERROR(s.Finish());
  }

  if (root.Has("timeouts")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields t, root.Object("timeouts"));
    double round_s = absl::ToDoubleSeconds(c.coordinator.round_timeout);
    double wait_s = absl::ToDoubleSeconds(c.coordinator.wait_for_clients_timeout);
    SHOAL_RETURN_IF_ERROR(t.Number("round_s", 0, 86400, &round_s, true));
    SHOAL_RETURN_IF_ERROR(t.Number("wait_for_clients_s", 0, 86400, &wait_s, true));
    c.coordinator.round_timeout = absl::Seconds(round_s);
    c.coordinator.wait_for_clients_timeout = absl::Seconds(wait_s);
    SHOAL_RETURN_IF_ERROR(t.Finish());
  }

  if (root.Has("data")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields d, root.Object("data"));
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("dir", &c.data_dir));
    std::string scheme = client::PartitionSchemeName(c.partition.scheme);
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("partitioner", &scheme));
    absl::StatusOr<client::PartitionScheme> parsed = client::ParsePartitionScheme(scheme);
    if (!parsed.ok()) return Annotate(parsed.status(), "'data.partitioner'");
    c.partition.scheme = *parsed;
    SHOAL_RETURN_IF_ERROR(d.Integer("num_partitions", 1, 1000000, &c.partition.num_partitions));
    SHOAL_RETURN_IF_ERROR(d.Number("alpha", 0, 1e6, &c.partition.alpha, true));
    SHOAL_RETURN_IF_ERROR(d.Integer("classes_per_client", 1, 10, &c.partition.classes_per_client));
    SHOAL_RETURN_IF_ERROR(
        d.Number("power_law_exponent", 0, 100, &c.partition.power_law_exponent, true));
    SHOAL_RETURN_IF_ERROR(
        d.Integer("min_partition_size", 0, kMaxInt, &c.partition.min_partition_size));
    c.partition.seed = c.seed;
    SHOAL_RETURN_IF_ERROR(d.Integer("seed", 0, std::numeric_limits<int64_t>::max(), &c.partition.seed));
    SHOAL_RETURN_IF_ERROR(d.Number("holdout_fraction", 0, 0.9, &c.holdout_fraction));
    SHOAL_RETURN_IF_ERROR(d.Finish());
  } else {
    c.partition.seed = c.seed;
  }

  if (root.Has("server")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("server"));
    SHOAL_RETURN_IF_ERROR(s.NonEmptyString("address", &c.address));
    SHOAL_RETURN_IF_ERROR(
        Annotate(ValidateListenAddress(c.address), "'server.address'"));
    SHOAL_RETURN_IF_ERROR(s.NonEmptyString("output_dir", &c.output_dir));
    SHOAL_RETURN_IF_ERROR(s.Bool("evaluate", &c.server_evaluation));
    SHOAL_RETURN_IF_ERROR(s.Integer("threads", 0, 1024, &c.threads));
    SHOAL_RETURN_IF_ERROR(s.Finish());
  }
  SHOAL_RETURN_IF_ERROR(ParseSimulation(root, c));
  SHOAL_RETURN_IF_ERROR(root.Finish());
  c.coordinator.seed = c.seed;
  return c.coordinator.Validate();
}

}  // namespace

ExperimentConfig::ExperimentConfig() {
  fit.set_local_epochs(1);
  fit.set_batch_size(32);
  fit.set_learning_rate(0.05);
  fit.set_momentum(0.9);
  coordinator.num_rounds = 5;
  coordinator.min_fit_clients = 5;
  coordinator.min_available_clients = 5;
  coordinator.sampling.min_clients = 5;
  coordinator.round_timeout = absl::Seconds(120);
  coordinator.wait_for_clients_timeout = absl::Seconds(120);
}

absl::StatusOr<ExperimentConfig> ParseExperimentConfig(const std::string& text,
                                                       const std::string& source) {
  SHOAL_ASSIGN_OR_RETURN(const json root, ParseJson(text, source));
  ExperimentConfig config;
  JsonFields::Context context;
  context.document = "the config";
  JsonFields fields(root, "", context);
  absl::Status status = ParseSections(fields, config);
  if (!status.ok()) return Annotate(status, source);
  return config;
}

absl::StatusOr<ExperimentConfig> LoadExperimentConfig(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  return ParseExperimentConfig(text, path);
}

absl::StatusOr<std::unique_ptr<Strategy>> CreateExperimentStrategy(
    const ExperimentConfig& config) {
  StrategyContext context;
  context.fit_config = config.fit;
  context.min_fit_clients = config.coordinator.min_fit_clients;
  context.seed = config.seed;
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Strategy> strategy,
                         CreateStrategy(config.strategy, config.strategy_params, context));
  if (config.coordinator.secure_aggregation.enabled) {
    if (config.privacy) {
      return absl::InvalidArgumentError(
          "'privacy' and 'secure_aggregation' cannot be combined yet: differential privacy "
          "clips and checks each update on the server, which secure aggregation hides");
    }
    SHOAL_RETURN_IF_ERROR(Annotate(CheckSecureAggregationSupported(*strategy),
                                   "'secure_aggregation'"));
  }
  if (!config.privacy) return strategy;
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<DifferentialPrivacy> private_strategy,
                         Annotate(DifferentialPrivacy::Wrap(std::move(strategy), *config.privacy,
                                                            config.coordinator.min_fit_clients),
                                  "'privacy'"));
  return std::unique_ptr<Strategy>(std::move(private_strategy));
}

absl::StatusOr<ServerSide> PrepareServerSide(const ExperimentConfig& config) {
  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, client::ParseModelSpec(config.model));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                         client::CreateModel(spec, config.seed));
  ServerSide side;
  SHOAL_ASSIGN_OR_RETURN(side.strategy, CreateExperimentStrategy(config));
  side.initial = model->GetParameters().Clone();
  if (std::optional<Parameters> custom = side.strategy->InitializeParameters()) {
    side.initial = *std::move(custom);
  }
  if (config.server_evaluation) {
    SHOAL_ASSIGN_OR_RETURN(ServerEvaluator evaluator, MakeTestSetEvaluator(config));
    side.strategy->set_server_evaluator(std::move(evaluator));
  }
  return side;
}

absl::StatusOr<ServerEvaluator> MakeTestSetEvaluator(const ExperimentConfig& config) {
  SHOAL_ASSIGN_OR_RETURN(client::Dataset test,
                         client::LoadFashionMnist(config.data_dir, client::Split::kTest));
  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, client::ParseModelSpec(config.model));
  spdlog::info("server-side evaluation on {} test examples from {}", test.size(), config.data_dir);
  return client::MakeDatasetEvaluator(spec, std::move(test));
}

}  // namespace shoal::cli
