#include "experiment/experiment_config.h"

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
#include "common/quote.h"
#include "common/status.h"
#include "strategies/registry.h"

namespace shoal {
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
  SHOAL_RETURN_IF_ERROR(
      s.Integer("examples_per_client", 1, int64_t{1} << 31, &sim.examples_per_client));
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
  // Per-device link speeds: a number (every device) or a distribution.
  for (const char* key : {"downlink_mbps", "uplink_mbps"}) {
    if (!s.Has(key)) continue;
    std::optional<simulation::Distribution>& link = key[0] == 'd' ? sim.population.downlink_mbps
                                                                  : sim.population.uplink_mbps;
    if (s.object().at(key).is_number()) {
      double mbps = 0;
      SHOAL_RETURN_IF_ERROR(s.Number(key, 0, 1e6, &mbps, /*lo_open=*/true));
      link = simulation::Distribution::Constant(mbps);
    } else {
      SHOAL_ASSIGN_OR_RETURN(JsonFields d, s.Object(key));
      link = simulation::Distribution::Constant(1);
      SHOAL_RETURN_IF_ERROR(ParseDistribution(std::move(d), &*link));
    }
  }
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

// ParseCompressionSection reads "compression": {"upload": "none" | "q8" |
// "q4" | "topk", "block": values per scale, "topk_fraction": kept fraction,
// "download": "full" | "delta"}.
absl::Status ParseCompressionSection(JsonFields& root, CompressionOptions& out,
                                     bool& delta_downloads) {
  if (!root.Has("compression")) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("compression"));
  std::string download = delta_downloads ? "delta" : "full";
  SHOAL_RETURN_IF_ERROR(s.NonEmptyString("download", &download));
  if (download != "full" && download != "delta") {
    return absl::InvalidArgumentError(absl::StrCat(
        "'compression.download' must be \"full\" or \"delta\", got ", QuoteForMessage(download, 40)));
  }
  delta_downloads = download == "delta";
  std::string upload = CompressionName(out.kind);
  SHOAL_RETURN_IF_ERROR(s.NonEmptyString("upload", &upload));
  SHOAL_ASSIGN_OR_RETURN(out.kind, Annotate(ParseCompression(upload), "'compression.upload'"));
  SHOAL_RETURN_IF_ERROR(s.Integer("block", 1, int64_t{1} << 24, &out.block));
  SHOAL_RETURN_IF_ERROR(s.Number("topk_fraction", 0, 1, &out.fraction, /*lo_open=*/true));
  SHOAL_RETURN_IF_ERROR(s.Finish());
  return Annotate(ValidateCompressionOptions(out), "'compression'");
}

// ReadDims reads `key` of `s` as a list of 1 to `max_len` integers in
// [lo, hi].
absl::Status ReadDims(JsonFields& s, const std::string& key, size_t max_len, int64_t lo, int64_t hi,
                      std::vector<int64_t>* out) {
  if (!s.Has(key)) return absl::OkStatus();
  const json& v = s.Raw(key);
  if (!v.is_array() || v.empty() || v.size() > max_len) {
    return absl::InvalidArgumentError(absl::StrCat("'", s.Key(key), "' must be a list of 1 to ",
                                                   max_len, " integers, got ", JsonForMessage(v)));
  }
  out->clear();
  for (const json& d : v) {
    if (!d.is_number_integer() || d.get<int64_t>() < lo || d.get<int64_t>() > hi) {
      return absl::InvalidArgumentError(absl::StrCat("'", s.Key(key), "' holds ", JsonForMessage(d),
                                                     "; each must be an "
                                                     "integer in [",
                                                     lo, ", ", hi, "]"));
    }
    out->push_back(d.get<int64_t>());
  }
  return absl::OkStatus();
}

// ReadNumbers reads `key` of `s` as one number or a list of 1 to 4096.
absl::Status ReadNumbers(JsonFields& s, const std::string& key, std::vector<double>* out) {
  const json& v = s.Raw(key);
  const json list = v.is_array() ? v : json::array({v});
  if (list.empty() || list.size() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", s.Key(key), "' must be a number or a list of 1 to 4096 numbers"));
  }
  out->clear();
  for (const json& d : list) {
    if (!d.is_number() || !std::isfinite(d.get<double>())) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", s.Key(key), "' holds ", JsonForMessage(d), ", not a finite number"));
    }
    out->push_back(d.get<double>());
  }
  return absl::OkStatus();
}

// ParseModel reads "model": a name or path, or an object.
absl::Status ParseModel(JsonFields& root, ExperimentConfig& c) {
  if (!root.Has("model")) return absl::OkStatus();
  if (root.Raw("model").is_string()) {
    std::string text;
    SHOAL_RETURN_IF_ERROR(root.NonEmptyString("model", &text));
    SHOAL_ASSIGN_OR_RETURN(c.model, Annotate(client::ParseModelSpec(text), "'model'"));
    return absl::OkStatus();
  }
  if (!root.Raw("model").is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'model' must be a string (a built-in name or a TorchScript path) or an "
                     "object, got ",
                     JsonForMessage(root.Raw("model"))));
  }
  SHOAL_ASSIGN_OR_RETURN(JsonFields m, root.Object("model"));
  if (m.Has("name") == m.Has("path")) {
    return absl::InvalidArgumentError(
        "'model' needs either a built-in \"name\" or a TorchScript \"path\", e.g. "
        "{\"name\": \"mlp\", \"hidden\": [64, 32]}");
  }
  std::string text;
  SHOAL_RETURN_IF_ERROR(m.NonEmptyString(m.Has("name") ? "name" : "path", &text));
  SHOAL_ASSIGN_OR_RETURN(c.model, Annotate(client::ParseModelSpec(text), "'model'"));
  if (m.Has("hidden") && c.model.name != "mlp") {
    return absl::InvalidArgumentError("'model.hidden' applies to the \"mlp\" model only");
  }
  SHOAL_RETURN_IF_ERROR(ReadDims(m, "hidden", 16, 1, 1 << 20, &c.model.hidden));
  SHOAL_RETURN_IF_ERROR(ReadDims(m, "input_shape", 8, 1, 1 << 20, &c.model.input_shape));
  SHOAL_RETURN_IF_ERROR(m.Integer("outputs", 1, 1 << 20, &c.model.outputs));
  return m.Finish();
}

// ParseTask reads "task".
absl::Status ParseTask(JsonFields& root, ExperimentConfig& c) {
  if (!root.Has("task")) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields t, root.Object("task"));
  std::string kind = client::TaskKindName(c.task.kind);
  SHOAL_RETURN_IF_ERROR(t.NonEmptyString("kind", &kind));
  SHOAL_ASSIGN_OR_RETURN(c.task.kind, Annotate(client::ParseTaskKind(kind), "'task.kind'"));
  if (t.Has("loss")) {
    if (c.task.kind != client::TaskKind::kRegression) {
      return absl::InvalidArgumentError(
          "'task.loss' applies to regression only (classification trains on cross-entropy, "
          "multilabel on binary cross-entropy)");
    }
    std::string loss;
    SHOAL_RETURN_IF_ERROR(t.NonEmptyString("loss", &loss));
    SHOAL_ASSIGN_OR_RETURN(c.task.regression_loss,
                           Annotate(client::ParseRegressionLoss(loss), "'task.loss'"));
  }
  SHOAL_RETURN_IF_ERROR(t.Integer("num_classes", 1, 1 << 20, &c.num_classes));
  return t.Finish();
}

// ReadNames reads `key` of `s` as one string or a list of 1 to 100,000.
absl::Status ReadNames(JsonFields& s, const std::string& key, std::vector<std::string>* out) {
  if (!s.Has(key)) return absl::OkStatus();
  const json& v = s.Raw(key);
  const json list = v.is_array() ? v : json::array({v});
  if (list.empty() || list.size() > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", s.Key(key), "' must be a string or a list of 1 to 100000 strings"));
  }
  out->clear();
  for (const json& name : list) {
    if (!name.is_string() || name.get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", s.Key(key), "' holds ", JsonForMessage(name), ", not a non-empty string"));
    }
    out->push_back(name.get<std::string>());
  }
  return absl::OkStatus();
}

// ParseCsv reads "data.csv".
absl::Status ParseCsv(JsonFields& d, client::CsvOptions& out) {
  if (!d.Has("csv")) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields c, d.Object("csv"));
  SHOAL_RETURN_IF_ERROR(ReadNames(c, "target", &out.target_columns));
  SHOAL_RETURN_IF_ERROR(ReadNames(c, "ignore", &out.ignore_columns));
  SHOAL_RETURN_IF_ERROR(c.Integer("skip_lines", 0, 1 << 20, &out.skip_lines));
  SHOAL_RETURN_IF_ERROR(c.Bool("header", &out.header));
  SHOAL_RETURN_IF_ERROR(ReadNames(c, "column_names", &out.column_names));
  std::string delimiter(1, out.delimiter);
  SHOAL_RETURN_IF_ERROR(c.NonEmptyString("delimiter", &delimiter));
  if (delimiter.size() != 1 || delimiter == "\"" || delimiter == "\n" || delimiter == "\r") {
    return absl::InvalidArgumentError(
        "'data.csv.delimiter' must be one character (\",\", \";\", \"\\t\", or \" \" for runs of "
        "spaces)");
  }
  out.delimiter = delimiter[0];
  SHOAL_RETURN_IF_ERROR(c.NonEmptyString("targets_file", &out.targets_path));
  if (!out.column_names.empty() && out.header) {
    return absl::InvalidArgumentError(
        "'data.csv.column_names' names the columns of a file without a header: set "
        "\"header\": false");
  }
  return c.Finish();
}

// ParseImages reads "data.image".
absl::Status ParseImages(JsonFields& d, client::ImageFolderOptions& out) {
  if (!d.Has("image")) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(JsonFields i, d.Object("image"));
  SHOAL_RETURN_IF_ERROR(i.Integer("height", 1, 8192, &out.height));
  SHOAL_RETURN_IF_ERROR(i.Integer("width", 1, 8192, &out.width));
  SHOAL_RETURN_IF_ERROR(i.Integer("channels", 1, 3, &out.channels));
  if (out.channels == 2) {
    return absl::InvalidArgumentError("'data.image.channels' must be 1 (gray) or 3 (RGB)");
  }
  SHOAL_RETURN_IF_ERROR(i.Bool("resize", &out.resize));
  return i.Finish();
}

// ParseNormalization reads "data.normalize": "none", "auto", or
// {"mean": ..., "std": ...}.
absl::Status ParseNormalization(JsonFields& d, client::Normalization& out) {
  if (!d.Has("normalize")) return absl::OkStatus();
  using Mode = client::Normalization::Mode;
  const json& v = d.Raw("normalize");
  if (v.is_string()) {
    const std::string mode = v.get<std::string>();
    if (mode == "none" || mode == "auto") {
      out = client::Normalization{};
      out.mode = mode == "none" ? Mode::kNone : Mode::kAuto;
      return absl::OkStatus();
    }
  }
  if (!v.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'data.normalize' must be \"none\", \"auto\" or {\"mean\": ..., \"std\": ...}, got ",
        JsonForMessage(v)));
  }
  SHOAL_ASSIGN_OR_RETURN(JsonFields n, d.Object("normalize"));
  if (!n.Has("mean") || !n.Has("std")) {
    return absl::InvalidArgumentError("'data.normalize' needs both \"mean\" and \"std\"");
  }
  out.mode = Mode::kGiven;
  SHOAL_RETURN_IF_ERROR(ReadNumbers(n, "mean", &out.mean));
  SHOAL_RETURN_IF_ERROR(ReadNumbers(n, "std", &out.std));
  SHOAL_RETURN_IF_ERROR(n.Finish());
  if (out.mean.size() != out.std.size()) {
    return absl::InvalidArgumentError(absl::StrCat("'data.normalize' has ", out.mean.size(),
                                                   " means but ", out.std.size(), " stds"));
  }
  for (double s : out.std) {
    if (!(s > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'data.normalize.std' holds ", s, "; every std must be > 0"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseSections(JsonFields& root, ExperimentConfig& c) {
  if (!root.object().is_object()) return root.Finish();  // "the config must be an object"
  SHOAL_RETURN_IF_ERROR(ParseSecureAggregation(root, c.coordinator.secure_aggregation));
  SHOAL_RETURN_IF_ERROR(
      ParseCompressionSection(root, c.coordinator.compression, c.delta_downloads));
  SHOAL_RETURN_IF_ERROR(root.NonEmptyString("name", &c.name));
  SHOAL_RETURN_IF_ERROR(root.Integer("seed", 0, std::numeric_limits<int64_t>::max(), &c.seed));
  SHOAL_RETURN_IF_ERROR(root.Integer("rounds", 1, kMaxRounds, &c.coordinator.num_rounds));
  SHOAL_RETURN_IF_ERROR(root.Number("target_accuracy", 0, 1, &c.coordinator.target_accuracy));
  SHOAL_RETURN_IF_ERROR(ParseModel(root, c));
  SHOAL_RETURN_IF_ERROR(ParseTask(root, c));

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
      return absl::InvalidArgumentError(
          "'privacy' must be an object, e.g. {\"noise_multiplier\": 1.0}");
    }
    SHOAL_ASSIGN_OR_RETURN(c.privacy, ParseDifferentialPrivacyOptions(p));
  }

  if (root.Has("fit")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields fit, root.Object("fit"));
    uint32_t epochs = c.fit.local_epochs(), batch = c.fit.batch_size();
    double lr = c.fit.learning_rate(), momentum = c.fit.momentum(), wd = c.fit.weight_decay();
    SHOAL_RETURN_IF_ERROR(fit.Integer("local_epochs", 1, 1000, &epochs));
    SHOAL_RETURN_IF_ERROR(fit.Integer("batch_size", 1, 1 << 20, &batch));
    SHOAL_RETURN_IF_ERROR(fit.Number("learning_rate", 0, 100, &lr, /*lo_open=*/true));
    SHOAL_RETURN_IF_ERROR(fit.Number("momentum", 0, 0.999, &momentum));
    SHOAL_RETURN_IF_ERROR(fit.Number("weight_decay", 0, 1, &wd));
    for (const char* key : {"freeze", "train_only", "personal"}) {
      std::vector<std::string>& patterns = std::string(key) == "freeze"   ? c.coordinator.freeze
                                           : std::string(key) == "personal" ? c.coordinator.personal
                                                                            : c.coordinator.train_only;
      SHOAL_RETURN_IF_ERROR(fit.Strings(key, &patterns));
      if (patterns.size() > 1024) {
        return absl::InvalidArgumentError(
            absl::StrCat("'fit.", key, "' holds ", patterns.size(), " patterns; at most 1024"));
      }
      for (const std::string& p : patterns) {
        if (p.empty() || p.size() > 256) {
          return absl::InvalidArgumentError(
              absl::StrCat("'fit.", key, "' patterns are 1 to 256 characters"));
        }
      }
    }
    if (!c.coordinator.freeze.empty() && !c.coordinator.train_only.empty()) {
      return absl::InvalidArgumentError("set 'fit.freeze' or 'fit.train_only', not both");
    }
    c.fit.set_local_epochs(epochs);
    c.fit.set_batch_size(batch);
    c.fit.set_learning_rate(lr);
    c.fit.set_momentum(momentum);
    c.fit.set_weight_decay(wd);
    SHOAL_RETURN_IF_ERROR(fit.Finish());
  }

  if (root.Has("sampling")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("sampling"));
    SHOAL_RETURN_IF_ERROR(s.Number("fraction_fit", 0, 1, &c.coordinator.sampling.fraction, true));
    SHOAL_RETURN_IF_ERROR(s.Integer("min_fit_clients", 1, kMaxInt, &c.coordinator.min_fit_clients));
    c.coordinator.min_available_clients = c.coordinator.min_fit_clients;
    SHOAL_RETURN_IF_ERROR(
        s.Integer("min_available_clients", 1, kMaxInt, &c.coordinator.min_available_clients));
    c.coordinator.sampling.min_clients = c.coordinator.min_fit_clients;
    SHOAL_RETURN_IF_ERROR(s.Integer("max_examples_per_client", 0, int64_t{1} << 53,
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
    std::string format = client::DataFormatName(c.data.format);
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("format", &format));
    SHOAL_ASSIGN_OR_RETURN(c.data.format,
                           Annotate(client::ParseDataFormat(format), "'data.format'"));
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("dir", &c.data.dir));
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("train", &c.data.train));
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("test", &c.data.test));
    SHOAL_RETURN_IF_ERROR(d.Number("test_fraction", 0, 0.9, &c.data.test_fraction));
    SHOAL_RETURN_IF_ERROR(ParseCsv(d, c.data.csv));
    SHOAL_RETURN_IF_ERROR(ParseImages(d, c.data.images));
    SHOAL_RETURN_IF_ERROR(ParseNormalization(d, c.data.normalization));
    SHOAL_RETURN_IF_ERROR(d.Bool("stream", &c.data.stream));
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("spool_dir", &c.data.spool_dir));
    if (c.data.format != client::DataFormat::kIdx && c.data.train.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("'data.train' is needed for data.format ",
                                                     client::DataFormatName(c.data.format)));
    }
    if (c.data.format == client::DataFormat::kCsv && c.data.csv.target_columns.empty()) {
      return absl::InvalidArgumentError(
          "'data.csv.target' names the target column(s) of a CSV file");
    }
    if (c.data.format == client::DataFormat::kImageFolder &&
        (c.data.images.height == 0 || c.data.images.width == 0)) {
      return absl::InvalidArgumentError(
          "'data.image' needs \"height\" and \"width\" for data.format image_folder");
    }
    std::string scheme = client::PartitionSchemeName(c.partition.scheme);
    SHOAL_RETURN_IF_ERROR(d.NonEmptyString("partitioner", &scheme));
    absl::StatusOr<client::PartitionScheme> parsed = client::ParsePartitionScheme(scheme);
    if (!parsed.ok()) return Annotate(parsed.status(), "'data.partitioner'");
    c.partition.scheme = *parsed;
    SHOAL_RETURN_IF_ERROR(d.Integer("num_partitions", 1, 1000000, &c.partition.num_partitions));
    SHOAL_RETURN_IF_ERROR(d.Number("alpha", 0, 1e6, &c.partition.alpha, true));
    SHOAL_RETURN_IF_ERROR(
        d.Integer("classes_per_client", 1, 1 << 20, &c.partition.classes_per_client));
    SHOAL_RETURN_IF_ERROR(
        d.Number("power_law_exponent", 0, 100, &c.partition.power_law_exponent, true));
    SHOAL_RETURN_IF_ERROR(
        d.Integer("min_partition_size", 0, kMaxInt, &c.partition.min_partition_size));
    c.partition.seed = c.seed;
    SHOAL_RETURN_IF_ERROR(
        d.Integer("seed", 0, std::numeric_limits<int64_t>::max(), &c.partition.seed));
    c.data.split_seed = c.partition.seed;
    SHOAL_RETURN_IF_ERROR(d.Number("holdout_fraction", 0, 0.9, &c.holdout_fraction));
    SHOAL_RETURN_IF_ERROR(d.Finish());
  } else {
    c.partition.seed = c.seed;
    c.data.split_seed = c.seed;
  }

  if (root.Has("server")) {
    SHOAL_ASSIGN_OR_RETURN(JsonFields s, root.Object("server"));
    SHOAL_RETURN_IF_ERROR(s.NonEmptyString("address", &c.address));
    SHOAL_RETURN_IF_ERROR(Annotate(ValidateListenAddress(c.address), "'server.address'"));
    SHOAL_RETURN_IF_ERROR(s.NonEmptyString("output_dir", &c.output_dir));
    SHOAL_RETURN_IF_ERROR(s.Bool("evaluate", &c.server_evaluation));
    SHOAL_RETURN_IF_ERROR(s.Integer("threads", 0, 1024, &c.threads));
    if (s.Has("serving")) {
      SHOAL_ASSIGN_OR_RETURN(JsonFields v, s.Object("serving"));
      ServingConfig& sv = c.serving;
      SHOAL_RETURN_IF_ERROR(v.NonEmptyString("dir", &sv.dir));
      SHOAL_RETURN_IF_ERROR(v.Bool("auto_promote", &sv.auto_promote));
      SHOAL_RETURN_IF_ERROR(v.Number("margin", -1, 1e9, &sv.margin));
      SHOAL_RETURN_IF_ERROR(v.Number("canary_fraction", 0, 1, &sv.canary_fraction));
      SHOAL_RETURN_IF_ERROR(v.Integer("min_canary_reports", 1, 1000000, &sv.min_canary_reports));
      SHOAL_RETURN_IF_ERROR(v.Number("max_canary_refusals", 0, 1, &sv.max_canary_refusals));
      SHOAL_RETURN_IF_ERROR(v.Number("canary_margin", 0, 1e9, &sv.canary_margin));
      SHOAL_RETURN_IF_ERROR(v.Number("canary_deadline_s", 1, 1e7, &sv.canary_deadline_s));
      SHOAL_RETURN_IF_ERROR(v.Finish());
    }
    if (s.Has("metrics")) {
      SHOAL_ASSIGN_OR_RETURN(JsonFields m, s.Object("metrics"));
      SHOAL_RETURN_IF_ERROR(m.NonEmptyString("listen", &c.metrics.listen));
      SHOAL_RETURN_IF_ERROR(m.NonEmptyString("token_file", &c.metrics.token_file));
      SHOAL_RETURN_IF_ERROR(m.Number("linger_s", 0, 3600, &c.metrics.linger_s));
      SHOAL_RETURN_IF_ERROR(m.Require({"listen"}));
      SHOAL_RETURN_IF_ERROR(
          Annotate(ValidateListenAddress(c.metrics.listen), "'server.metrics.listen'"));
      SHOAL_RETURN_IF_ERROR(m.Finish());
    }
    SHOAL_RETURN_IF_ERROR(s.Finish());
  }
  SHOAL_RETURN_IF_ERROR(ParseSimulation(root, c));
  SHOAL_RETURN_IF_ERROR(root.Finish());
  c.coordinator.seed = c.seed;
  return c.coordinator.Validate();
}

}  // namespace

ExperimentConfig::ExperimentConfig() {
  data.dir = "/usr/share/datasets/fashion-mnist";  // Debian's dataset-fashion-mnist
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

absl::StatusOr<std::unique_ptr<Strategy>> CreateExperimentStrategy(const ExperimentConfig& config) {
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
    SHOAL_RETURN_IF_ERROR(
        Annotate(CheckSecureAggregationSupported(*strategy), "'secure_aggregation'"));
  }
  if (config.privacy) {
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<DifferentialPrivacy> private_strategy,
                           Annotate(DifferentialPrivacy::Wrap(std::move(strategy), *config.privacy,
                                                              config.coordinator.min_fit_clients),
                                    "'privacy'"));
    strategy = std::move(private_strategy);
  }
  // Refused here too, so that a submitted run is refused before it queues.
  SHOAL_RETURN_IF_ERROR(Annotate(strategy->CheckCompression(config.coordinator.compression.kind),
                                 "'compression'"));
  return strategy;
}

absl::StatusOr<client::ModelSpec> ResolveModel(const ExperimentConfig& config,
                                               const client::Dataset& data) {
  return ResolveModel(config, *client::InMemory(data));
}

absl::StatusOr<client::ModelSpec> ResolveModel(const ExperimentConfig& config,
                                               const client::ExampleSource& data) {
  const client::Task task(config.task);
  SHOAL_ASSIGN_OR_RETURN(const int64_t outputs,
                         Annotate(client::OutputsFor(task, data, config.num_classes), "the data"));
  return Annotate(client::ResolveModelShape(config.model, data.input_shape(), outputs),
                  "'model'");
}

absl::StatusOr<ServerSide> PrepareServerSide(const ExperimentConfig& config) {
  ServerSide side;
  side.model = config.model;
  std::optional<client::Dataset> test;
  const bool shaped = !client::IsBuiltinModel(config.model) ||
                      (!config.model.input_shape.empty() && config.model.outputs > 0);
  if (config.server_evaluation || !shaped) {
    // The test split gives the shapes the config leaves out.
    absl::StatusOr<client::Dataset> loaded = client::LoadData(
        config.data, client::Split::kTest, client::Task(config.task), config.num_classes);
    if (!loaded.ok()) {
      if (config.server_evaluation) return Annotate(loaded.status(), "server.evaluate");
      return Annotate(loaded.status(),
                      "the model's shapes come from the test data when the config does not set "
                      "model.input_shape and model.outputs");
    }
    test = *std::move(loaded);
    SHOAL_ASSIGN_OR_RETURN(side.model, ResolveModel(config, *test));
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                         client::CreateModel(side.model, config.seed));
  SHOAL_ASSIGN_OR_RETURN(side.strategy, CreateExperimentStrategy(config));
  side.initial = model->GetParameters().Clone();
  if (std::optional<Parameters> custom = side.strategy->InitializeParameters()) {
    side.initial = *std::move(custom);
  }
  // fit.freeze / train_only / personal name tensors of this model: a typo is
  // refused now, before a submitted run queues.
  SHOAL_RETURN_IF_ERROR(CheckTensorPatterns(config.coordinator, side.initial));
  if (config.server_evaluation) {
    SHOAL_ASSIGN_OR_RETURN(ServerEvaluator evaluator,
                           MakeTestSetEvaluator(config, side.model, *std::move(test)));
    side.strategy->set_server_evaluator(std::move(evaluator));
  }
  return side;
}

absl::StatusOr<ServerEvaluator> MakeTestSetEvaluator(const ExperimentConfig& config,
                                                     const client::ModelSpec& spec,
                                                     client::Dataset test) {
  spdlog::info("server-side evaluation on {} test examples ({} data in {})", test.size(),
               client::DataFormatName(config.data.format), config.data.dir);
  return client::MakeDatasetEvaluator(spec, client::Task(config.task), std::move(test));
}

absl::StatusOr<nlohmann::json> FingerprintedConfig(const std::string& config_path) {
  if (config_path.empty()) return nlohmann::json::object();
  SHOAL_ASSIGN_OR_RETURN(std::string text, ReadFile(config_path, 1 << 20));
  return FingerprintedConfigText(text, config_path);
}

absl::StatusOr<nlohmann::json> FingerprintedConfigText(const std::string& text,
                                                       const std::string& source) {
  SHOAL_ASSIGN_OR_RETURN(nlohmann::json config, ParseJson(text, source));
  if (!config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  for (const char* key : {"rounds", "server", "simulation"}) config.erase(key);
  return config;
}

}  // namespace shoal
