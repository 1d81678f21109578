// Model: a trainable LibTorch model behind one small interface, whether it is
// a built-in module or a TorchScript file exported from PyTorch.
#ifndef SHOAL_CLIENT_MODEL_H_
#define SHOAL_CLIENT_MODEL_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_dir.h"
#include "common/parameters.h"

namespace shoal::client {

// ModelSpec names a model: a built-in one ("cnn", "2nn", "logreg") or a
// TorchScript file ("torchscript" with `torchscript_path`).
struct ModelSpec {
  std::string name = "cnn";
  std::string torchscript_path;
};

// ParseModelSpec accepts a built-in name or a path ending in ".pt"/".pth";
// anything else is InvalidArgument listing the choices.
absl::StatusOr<ModelSpec> ParseModelSpec(const std::string& text);
// ModelSpecToString is the inverse of ParseModelSpec.
std::string ModelSpecToString(const ModelSpec& spec);

// Model is the interface the Trainer and the inference runner use. The model
// takes float32 [N, 1, 28, 28] images and returns logits [N, num_classes].
// Not thread-safe: one model per thread.
class Model {
 public:
  virtual ~Model() = default;

  // GetParameters returns every parameter and floating-point buffer in a
  // fixed order, detached, sharing storage with the model (Clone() before
  // keeping them across training).
  virtual Parameters GetParameters() const = 0;
  // SetParameters copies `params` into the model. InvalidArgument (naming
  // the tensor) when names, shapes or dtypes do not match; the model is
  // unchanged then.
  virtual absl::Status SetParameters(const Parameters& params) = 0;
  // TrainableParameters returns the tensors an optimizer updates.
  virtual std::vector<at::Tensor> TrainableParameters() = 0;
  // Forward returns logits.
  virtual at::Tensor Forward(const at::Tensor& input) = 0;
  virtual void SetTraining(bool training) = 0;
  // To moves the model to `device`.
  virtual void To(const c10::Device& device) = 0;
};

// CreateModel builds the model `spec` names, initialized from `seed`
// (built-ins) or from the file (TorchScript). Errors name the file or the
// unknown model.
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec,
                                                   uint64_t seed = 0);

// CreateModelFromCode builds the model `code` names: a built-in initialized
// from `seed`, or a TorchScript model loaded from `code.torchscript` (from
// memory: the bytes a signature covers are the bytes that run, with no file
// in between). InvalidArgument for an unknown built-in, TorchScript bytes
// that do not load or do not produce logits, or a spec and bytes that
// disagree.
absl::StatusOr<std::unique_ptr<Model>> CreateModelFromCode(const ModelCode& code,
                                                           uint64_t seed = 0);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_MODEL_H_
