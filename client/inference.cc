#include "client/inference.h"

#include <torch/torch.h>
#include <unistd.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/data/dataset.h"
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

absl::StatusOr<at::Tensor> ReadPgm(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, 16 << 20));
  std::istringstream in(bytes);
  std::string magic;
  int width = 0, height = 0, maxval = 0;
  in >> magic >> width >> height >> maxval;
  if (!in || magic != "P5" || width != 28 || height != 28 || maxval != 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is not a 28x28 8-bit binary PGM (P5, maxval 255)"));
  }
  in.get();  // the single whitespace byte before the pixels
  const auto offset = static_cast<size_t>(in.tellg());
  if (bytes.size() < offset + 28 * 28) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is truncated"));
  }
  at::Tensor img = torch::from_blob(bytes.data() + offset, {1, 28, 28}, torch::kUInt8).clone();
  return ScaleImages(img);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadStoredModel(const std::string& dir,
                                                       ModelRecord* record,
                                                       const std::string& spec_override,
                                                       const ModelVerifier* verifier) {
  SHOAL_ASSIGN_OR_RETURN(LoadedModelVersion loaded,
                         LoadModelVersion(dir, kLatestVersion, verifier));
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
  SHOAL_RETURN_IF_ERROR(
      Annotate(model->SetParameters(loaded.params), absl::StrCat("model in '", dir, "'")));
  if (record != nullptr) *record = std::move(loaded.record);
  return model;
}

absl::StatusOr<at::Tensor> LoadImages(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(const bool pgm, HasPgmMagic(path));
  if (pgm) return ReadPgm(path);
  SHOAL_ASSIGN_OR_RETURN(at::Tensor raw, ReadIdxImages(path));
  if (raw.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no images"));
  }
  return ScaleImages(raw);
}

absl::StatusOr<std::vector<Prediction>> Predict(Model& model, const at::Tensor& images,
                                                int64_t batch_size) {
  if (images.dim() != 4) {
    return absl::InvalidArgumentError("images must be [N, 1, 28, 28]");
  }
  std::vector<Prediction> out;
  out.reserve(images.size(0));
  try {
    torch::NoGradGuard no_grad;
    model.SetTraining(false);
    for (int64_t begin = 0; begin < images.size(0); begin += batch_size) {
      const int64_t end = std::min(images.size(0), begin + batch_size);
      at::Tensor probs = torch::softmax(model.Forward(images.slice(0, begin, end)), 1);
      auto [conf, label] = probs.max(1);
      for (int64_t i = 0; i < end - begin; ++i) {
        out.push_back({label[i].item<int64_t>(), conf[i].item<double>()});
      }
    }
  } catch (const c10::Error& e) {
    // Most often input the model cannot take (another image size); LibTorch's
    // message says which layer, its backtrace is of no use to the user.
    std::string what = e.what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    return absl::InvalidArgumentError(absl::StrCat("the model cannot classify images of shape [",
                                                   absl::StrJoin(images.sizes(), ", "),
                                                   "]: ", what));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
  }
  return out;
}

}  // namespace shoal::client
