// pytorch_model: a model defined and scripted in PyTorch, trained on data
// saved with torch.save by a federated simulation, then exported back to a
// TorchScript file PyTorch loads. prepare.py writes the model and the data;
// evaluate.py scores the export in PyTorch and compares with the accuracy
// printed here. Public API only.
//
// Usage: pytorch_model CONFIG.json DIR
//   DIR holds what prepare.py wrote. The config's relative paths (model,
//   data, output_dir) are taken under DIR; the trained model goes to
//   DIR/trained.pt.
// Prints, last, one line "shoal accuracy: A" with the final global model's
// test accuracy as the simulation's server-side evaluation measured it.
// Exit 0 on success, 1 when the run or the export failed, 2 on bad input.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "shoal/config.h"
#include "shoal/model.h"
#include "shoal/simulation.h"
#include "shoal/status.h"

namespace {

// Under returns `path` taken under `dir` when it is relative.
std::string Under(const std::string& dir, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(dir) / path).string();
}

// WriteFile writes `bytes` to `path`; Internal naming the file on failure.
absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError("cannot write '" + path + "'");
  return absl::OkStatus();
}

// TrainAndExport runs `config`, writes the final global model to `output`
// as TorchScript, and returns its test accuracy.
absl::StatusOr<double> TrainAndExport(const shoal::ExperimentConfig& config,
                                      const std::string& output) {
  SHOAL_ASSIGN_OR_RETURN(shoal::SimulationResult result, shoal::RunSimulation(config));
  const shoal::RoundRecord& last = result.history.back();
  if (!last.server_eval) {
    return absl::FailedPreconditionError("the config turns server.evaluate off");
  }
  const auto accuracy = last.server_eval->metrics.find("accuracy");
  if (accuracy == last.server_eval->metrics.end()) {
    return absl::FailedPreconditionError("the task reports no accuracy");
  }
  // The version the last round evaluated, by number: a rerun into the same
  // output_dir may have left newer versions of an earlier, longer run.
  shoal::ModelRecord record;
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<shoal::Model> model,
      shoal::LoadStoredModel(config.output_dir + "/models", &record,
                             /*spec_override=*/"", /*verifier=*/nullptr, last.model_version));
  SHOAL_ASSIGN_OR_RETURN(const std::string bytes, model->Export());
  SHOAL_RETURN_IF_ERROR(WriteFile(output, bytes));
  std::printf("exported model version %lld to %s (torch.jit.load)\n",
              static_cast<long long>(record.version), output.c_str());
  return shoal::MetricAsDouble(accuracy->second);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CONFIG.json DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[2];
  absl::StatusOr<shoal::ExperimentConfig> config = shoal::LoadExperimentConfig(argv[1]);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  config->model.torchscript_path = Under(dir, config->model.torchscript_path);
  config->data.train = Under(dir, config->data.train);
  config->data.test = Under(dir, config->data.test);
  config->output_dir = Under(dir, config->output_dir);
  absl::StatusOr<double> accuracy = TrainAndExport(*config, Under(dir, "trained.pt"));
  if (!accuracy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(accuracy.status().message()).c_str());
    return 1;
  }
  std::printf("shoal accuracy: %.9f\n", *accuracy);
  return 0;
}
