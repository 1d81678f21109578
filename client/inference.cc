#include "client/inference.h"

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/local_client.h"
#include "common/files.h"
#include "common/status.h"

namespace shoal::client {
namespace {

// HasPgmMagic: whether `path` starts with "P5". Errors: as OpenRegularFile
// (never waits on a FIFO).
absl::StatusOr<bool> HasPgmMagic(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path));
  char magic[2] = {0, 0};
  const bool pgm = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 'P' && magic[1] == '5';
  ::close(fd);
  return pgm;
}

// ReadPgm reads one 8-bit binary PGM image as uint8 [1, H, W].
absl::StatusOr<at::Tensor> ReadPgm(const std::string& path) {
  constexpr int kMaxSide = 4096;
  SHOAL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, 64 << 20));
  std::istringstream in(bytes);
  std::string magic;
  int width = 0, height = 0, maxval = 0;
  in >> magic >> width >> height >> maxval;
  if (!in || magic != "P5" || width < 1 || height < 1 || width > kMaxSide || height > kMaxSide ||
      maxval != 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is not an 8-bit binary PGM (P5, maxval 255, sides 1 to ", kMaxSide, ")"));
  }
  in.get();  // the single whitespace byte before the pixels
  const auto offset = static_cast<size_t>(in.tellg());
  const auto pixels = static_cast<size_t>(width) * static_cast<size_t>(height);
  if (bytes.size() < offset + pixels) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is truncated"));
  }
  return torch::from_blob(bytes.data() + offset, {1, height, width}, torch::kUInt8).clone();
}

// ReadImageFile reads an IDX3 image file or a PGM image as uint8 [N, H, W].
absl::StatusOr<at::Tensor> ReadImageFile(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(const bool pgm, HasPgmMagic(path));
  if (pgm) return ReadPgm(path);
  return ReadIdxImages(path);
}

// LoadIdxInputs: LoadInputs for an IDX image file (or PGM) and optional
// IDX labels, with the targets shaped for `task` as LoadData shapes them.
absl::StatusOr<Dataset> LoadIdxInputs(const std::string& path, const Task& task,
                                      const std::string& labels_path) {
  SHOAL_ASSIGN_OR_RETURN(const at::Tensor images, ReadImageFile(path));
  Dataset data;
  data.inputs = ScaleImages(images);
  if (labels_path.empty()) return data;
  SHOAL_ASSIGN_OR_RETURN(data.targets, ReadIdxLabels(labels_path));
  if (data.targets.size(0) != data.inputs.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("'", labels_path, "' holds ",
                                                   data.targets.size(0), " labels for ",
                                                   data.inputs.size(0), " images in '", path, "'"));
  }
  // IDX labels are class indices; other tasks read them as values.
  if (!TargetsAreClassIndices(task.options().kind)) data.targets = data.targets.to(at::kFloat);
  return data;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadStoredModel(const std::string& dir, ModelRecord* record,
                                                       const std::string& spec_override,
                                                       const ModelVerifier* verifier,
                                                       int64_t version) {
  SHOAL_ASSIGN_OR_RETURN(LoadedModelVersion loaded, LoadModelVersion(dir, version, verifier));
  ModelCode code = std::move(loaded.code);
  if (!spec_override.empty()) {
    SHOAL_ASSIGN_OR_RETURN(ModelCode chosen, ReadModelCode(spec_override));
    if (verifier != nullptr &&
        (chosen.spec != code.spec || chosen.torchscript != code.torchscript)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "model '", spec_override, "' is not the code the signature of the model in '", dir,
          "' covers (", code.spec,
          code.torchscript.empty() ? ""
                                   : absl::StrCat(", code SHA-256 ", loaded.record.code_sha256_hex),
          "); leave the model out to run the signed one"));
    }
    code = std::move(chosen);
  } else if (IsTorchScriptPath(code.spec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model in '", dir,
        "' was stored by an older Shoal: its manifest names a TorchScript "
        "file instead of keeping the code, and that path is not followed; name the code "
        "yourself (the model override) if you trust it"));
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                         Annotate(CreateModelFromCode(code), absl::StrCat("model in '", dir, "'")));
  // A device's own personal tensors (fit.personal), kept beside its copy
  // of the global model: not signed, so checked before they are used.
  Parameters params = std::move(loaded.params);
  absl::StatusOr<ClientAlgorithmState> kept = ReadClientState(dir);
  if (kept.ok() && kept->count(kPersonalState) > 0) {
    SHOAL_ASSIGN_OR_RETURN(params, Annotate(WithPersonal(params, kept->at(kPersonalState)),
                                            absl::StrCat(dir, "/client_state.pb")));
    spdlog::info("with this device's {} personal tensor(s) from {}/client_state.pb",
                 kept->at(kPersonalState).size(), dir);
  } else if (!kept.ok() && !absl::IsNotFound(kept.status())) {
    spdlog::warn("predicting without personal tensors: {}", std::string(kept.status().message()));
  }
  SHOAL_RETURN_IF_ERROR(
      Annotate(model->SetParameters(params), absl::StrCat("model in '", dir, "'")));
  if (record != nullptr) *record = std::move(loaded.record);
  return model;
}

absl::StatusOr<Dataset> LoadInputs(const DataOptions& options, const std::string& path,
                                   const Task& task, const std::string& labels_path) {
  std::error_code ec;
  const bool folder = std::filesystem::is_directory(path, ec);
  if (folder && !labels_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is a data folder, which carries its own labels; leave the labels out"));
  }
  Dataset data;
  if (options.format == DataFormat::kIdx && !folder) {
    SHOAL_ASSIGN_OR_RETURN(data, LoadIdxInputs(path, task, labels_path));
    if (data.inputs.size(0) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no examples"));
    }
    SHOAL_RETURN_IF_ERROR(
        Annotate(Normalize(options.normalization, data).status(), absl::StrCat("'", path, "'")));
    return data;
  }
  if (!labels_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("separate labels are read for IDX images only; ",
                                                   DataFormatName(options.format),
                                                   " data carries its own"));
  }
  // The very reader (and normalization) training uses, pointed at `path`:
  // an IDX folder's test split, or one file (or image folder).
  if (options.format == DataFormat::kIdx) {
    DataOptions at_path = options;
    at_path.dir = path;
    SHOAL_ASSIGN_OR_RETURN(data, LoadData(at_path, Split::kTest, task));
  } else {
    SHOAL_ASSIGN_OR_RETURN(data, ReadDataFile(options, path, task));
    SHOAL_ASSIGN_OR_RETURN(const Normalization normalization,
                           TrainingNormalization(options, task));
    SHOAL_RETURN_IF_ERROR(
        Annotate(Normalize(normalization, data).status(), absl::StrCat("'", path, "'")));
  }
  if (!data.inputs.defined() || data.inputs.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no examples"));
  }
  return data;
}

absl::StatusOr<at::Tensor> Predict(Model& model, const at::Tensor& inputs, int64_t batch_size) {
  try {
    model.SetTraining(false);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
  }
  return ForwardInBatches(model, inputs, batch_size);
}

absl::StatusOr<at::Tensor> ForwardInBatches(Model& model, const at::Tensor& inputs,
                                            int64_t batch_size) {
  if (!inputs.defined() || inputs.dim() < 1 || batch_size < 1) {
    return absl::InvalidArgumentError("Predict needs inputs [N, ...] and a batch size > 0");
  }
  try {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> outputs;
    for (int64_t begin = 0; begin < inputs.size(0); begin += batch_size) {
      const int64_t end = std::min(inputs.size(0), begin + batch_size);
      outputs.push_back(model.Forward(inputs.slice(0, begin, end)).to(at::kCPU));
    }
    if (outputs.empty()) return at::empty({0});
    if (outputs.size() == 1) return outputs[0];  // no copy for one pass
    return at::cat(outputs, 0);
  } catch (const c10::Error& e) {
    // Most often inputs the model cannot take (another shape); LibTorch's
    // message says which layer, its backtrace is of no use to the user.
    std::string what = e.what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    return absl::InvalidArgumentError(absl::StrCat("the model cannot take inputs of shape [",
                                                   absl::StrJoin(inputs.sizes(), ", "),
                                                   "]: ", what));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
  }
}

absl::StatusOr<Predictions> ToPredictions(const Task& task, const at::Tensor& outputs) {
  const std::string shape = absl::StrCat("[", absl::StrJoin(outputs.sizes(), ", "), "]");
  if (outputs.dim() < 1 || outputs.dim() > 2 || !at::isFloatingType(outputs.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("a model's outputs must be floating-point [N] or [N, K], got ", shape));
  }
  Predictions p;
  try {
    const at::Tensor x = outputs.to(at::kCPU, at::kFloat);
    const at::Tensor wide = x.dim() == 1 ? x.unsqueeze(1) : x;
    switch (task.options().kind) {
      case TaskKind::kClassification: {
        if (x.dim() != 2) {
          return absl::InvalidArgumentError(
              absl::StrCat("a classification model must return logits [N, classes], got ", shape));
        }
        auto [probability, cls] = at::softmax(x, 1).max(1);
        p.classes = cls.contiguous();
        p.probabilities = probability.contiguous();
        break;
      }
      case TaskKind::kMultiLabel:
        p.probabilities = at::sigmoid(wide).contiguous();
        break;
      case TaskKind::kRegression:
        p.values = wide.contiguous();
        break;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("reading the model's outputs: ", e.what_without_backtrace()));
  }
  return p;
}

absl::StatusOr<Metrics> ScoreOutputs(const Task& task, const at::Tensor& outputs,
                                     const at::Tensor& targets) {
  if (outputs.dim() < 1 || !targets.defined() || targets.dim() < 1 ||
      targets.size(0) != outputs.size(0) || outputs.size(0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot score ", outputs.dim() < 1 ? 0 : outputs.size(0), " outputs against ",
                     targets.defined() && targets.dim() > 0 ? targets.size(0) : 0, " targets"));
  }
  SHOAL_RETURN_IF_ERROR(task.CheckTargets(targets, outputs));
  try {
    torch::NoGradGuard no_grad;
    Task::MetricSums sums(task, outputs.options());
    sums.Add(outputs, targets.to(outputs.device()));
    return sums.Result(outputs.size(0));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("scoring: ", e.what_without_backtrace()));
  }
}

}  // namespace shoal::client
