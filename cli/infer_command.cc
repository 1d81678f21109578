// shoal infer: run a stored global model on inputs read as training reads
// them, and print its predictions as a table, CSV or JSON lines.
#include <torch/torch.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "experiment/experiment_config.h"
#include "client/inference.h"
#include "client/trainer.h"
#include "common/signing.h"
#include "common/status.h"

namespace shoal::cli {
namespace {

enum class OutputFormat { kTable, kCsv, kJsonl };

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "csv") return OutputFormat::kCsv;
  if (text == "jsonl") return OutputFormat::kJsonl;
  return absl::InvalidArgumentError(
      absl::StrCat("--output '", text.substr(0, 32), "': expected table, csv or jsonl"));
}

// Row returns row `i` of float32 [N, K] `values`.
std::vector<double> Row(const at::Tensor& values, int64_t i) {
  const float* row = values.data_ptr<float>() + i * values.size(1);
  return std::vector<double>(row, row + values.size(1));
}

// CsvHeader is the header row of `kind`'s predictions with K columns.
std::string CsvHeader(client::TaskKind kind, int64_t k) {
  if (kind == client::TaskKind::kClassification) return "index,class,probability";
  const char* column = kind == client::TaskKind::kMultiLabel ? "label_" : "value_";
  std::string header = "index";
  for (int64_t j = 0; j < k; ++j) absl::StrAppend(&header, ",", column, j);
  return header;
}

// FormatPrediction formats prediction `i` of `p` as a table line, a CSV
// row or a JSON object.
std::string FormatPrediction(OutputFormat format, client::TaskKind kind,
                             const client::Predictions& p, int64_t i) {
  const auto number = [](double v) { return absl::StrFormat("%.9g", v); };
  if (kind == client::TaskKind::kClassification) {
    const int64_t cls = p.classes.data_ptr<int64_t>()[i];
    const double probability = p.probabilities.data_ptr<float>()[i];
    switch (format) {
      case OutputFormat::kTable:
        return absl::StrFormat("  [%d] class %d %5.1f%%", i, cls, 100 * probability);
      case OutputFormat::kCsv:
        return absl::StrCat(i, ",", cls, ",", number(probability));
      case OutputFormat::kJsonl:
        return nlohmann::json{{"index", i}, {"class", cls}, {"probability", probability}}.dump();
    }
  }
  const bool multilabel = kind == client::TaskKind::kMultiLabel;
  const std::vector<double> row = Row(multilabel ? p.probabilities : p.values, i);
  switch (format) {
    case OutputFormat::kTable:
      return absl::StrFormat("  [%d] %s %s", i, multilabel ? "p(label) =" : "value =",
                             absl::StrJoin(row, " ", [](std::string* out, double v) {
                               absl::StrAppend(out, absl::StrFormat("%.4g", v));
                             }));
    case OutputFormat::kCsv:
      return absl::StrCat(i, ",", absl::StrJoin(row, ",", [&number](std::string* out, double v) {
                            absl::StrAppend(out, number(v));
                          }));
    case OutputFormat::kJsonl:
      return nlohmann::json{{"index", i}, {multilabel ? "probabilities" : "values", row}}.dump();
  }
  return "";
}

// FormatMetrics: "accuracy: 87.12% (8712 of 10000)" or "mae: ... rmse: ...".
std::string FormatMetrics(const client::Task& task, const Metrics& metrics, int64_t n) {
  if (task.options().kind == client::TaskKind::kClassification) {
    const double accuracy = MetricAsDouble(metrics.at("accuracy"));
    return absl::StrFormat("accuracy: %.2f%% (%d of %d)", 100 * accuracy,
                           static_cast<int64_t>(std::llround(accuracy * static_cast<double>(n))),
                           n);
  }
  return absl::StrJoin(metrics, "  ", [](std::string* out, const auto& metric) {
    absl::StrAppend(out, metric.first, ": ",
                    absl::StrFormat("%.9g", MetricAsDouble(metric.second)));
  });
}

absl::Status RunInfer(const InferFlags& flags) {
  SHOAL_ASSIGN_OR_RETURN(const OutputFormat format, ParseOutputFormat(flags.output));
  SHOAL_ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelVerifier> verifier,
      VerifierForStoredModel(flags.model_key, flags.insecure_unverified, "shoal infer"));
  // Without a config: IDX or PGM images in [0, 1], classified.
  client::DataOptions data_options;
  client::TaskOptions task_options;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(const ExperimentConfig config, LoadExperimentConfig(flags.config));
    data_options = config.data;
    task_options = config.task;
  }
  const client::Task task(task_options);
  ModelRecord record;
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<client::Model> model,
      client::LoadStoredModel(flags.model_dir, &record, flags.model, verifier.get()));
  SHOAL_ASSIGN_OR_RETURN(const client::Dataset data,
                         client::LoadInputs(data_options, flags.input, task, flags.labels));
  SHOAL_ASSIGN_OR_RETURN(const at::Tensor outputs, Annotate(client::Predict(*model, data.inputs),
                                                            absl::StrCat("'", flags.input, "'")));
  SHOAL_ASSIGN_OR_RETURN(const client::Predictions predictions,
                         client::ToPredictions(task, outputs));
  const int64_t n = outputs.size(0);
  // The signature covers the weights, the spec and the code's SHA-256
  // (common/signing.h), so "verified" speaks for the code that just ran.
  // Unverified, --model replaces the recorded code; verified, it can only
  // name the same code.
  const std::string code = !flags.model.empty() && verifier == nullptr ? flags.model
                           : record.code_sha256_hex.empty()
                               ? record.model_spec
                               : absl::StrCat(record.model_spec, ", code SHA-256 ",
                                              record.code_sha256_hex.substr(0, 16));
  // Machine-readable output keeps stdout to the predictions alone.
  std::FILE* notes = format == OutputFormat::kTable ? stdout : stderr;
  std::fprintf(notes, "model version %lld (%s) from %s, %s, %lld example(s), %s task\n",
               static_cast<long long>(record.version), code.c_str(), flags.model_dir.c_str(),
               verifier != nullptr
                   ? absl::StrCat("signature verified over weights, spec and code (key ",
                                  verifier->key_id(), ")")
                         .c_str()
                   : "signature NOT checked",
               static_cast<long long>(n), client::TaskKindName(task_options.kind).c_str());
  const int64_t limit = std::min(n, flags.limit.value_or(format == OutputFormat::kTable ? 10 : n));
  const at::Tensor& columns =
      predictions.values.defined() ? predictions.values : predictions.probabilities;
  if (format == OutputFormat::kCsv) {
    std::printf("%s\n",
                CsvHeader(task_options.kind, columns.dim() == 2 ? columns.size(1) : 1).c_str());
  }
  const bool labelled = data.targets.defined();
  for (int64_t i = 0; i < limit; ++i) {
    std::string line = FormatPrediction(format, task_options.kind, predictions, i);
    if (format == OutputFormat::kTable && labelled) {
      const at::Tensor target = data.targets[i];
      absl::StrAppend(&line, "  (target: ",
                      target.dim() == 0
                          ? absl::StrFormat("%.6g", target.item<double>())
                          : absl::StrJoin(Row(target.unsqueeze(0).to(at::kFloat), 0), " "),
                      ")");
    }
    std::printf("%s\n", line.c_str());
  }
  if (labelled) {
    SHOAL_ASSIGN_OR_RETURN(const Metrics metrics,
                           Annotate(client::ScoreOutputs(task, outputs, data.targets),
                                    absl::StrCat("'", flags.input, "'")));
    std::fprintf(notes, "%s\n", FormatMetrics(task, metrics, n).c_str());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ModelVerifier>> VerifierForStoredModel(
    const std::string& model_key, bool insecure_unverified, absl::string_view command) {
  if (!model_key.empty()) return ModelVerifier::Load(model_key);
  if (!insecure_unverified) {
    return absl::InvalidArgumentError(
        "refusing a model whose origin is not checked: give --model-key FILE (the "
        "server's model-signing.pub), or --insecure-unverified to skip the check");
  }
  std::fprintf(stderr,
               "%s: warning: --insecure-unverified: the model's signature is not checked, so "
               "its origin is not either; it may have been altered\n",
               std::string(command).c_str());
  return std::shared_ptr<const ModelVerifier>();
}

int RunInferCommand(const InferFlags& flags) {
  client::SetComputeThreads(static_cast<int>(std::thread::hardware_concurrency()));
  absl::Status status = RunInfer(flags);
  if (!status.ok()) {
    PrintCommandError("infer", status.message());
    return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace shoal::cli
