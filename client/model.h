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

// ModelSpec names a model: a built-in one ("cnn", "2nn", "logreg", "mlp")
// shaped for its data, or a TorchScript file (name "torchscript" with
// `torchscript_path`), which brings its own shapes.
struct ModelSpec {
  std::string name = "cnn";
  std::string torchscript_path;
  // Built-ins only: the shape of one example's input (e.g. {1, 28, 28} for
  // a gray image, {30} for a row of 30 features) and the number of outputs
  // (classes, labels or regression values). ResolveModelShape fills them
  // from the data; a built-in cannot be built without them.
  std::vector<int64_t> input_shape;
  int64_t outputs = 0;
  // "mlp" only: the widths of its hidden layers (ReLU between them).
  std::vector<int64_t> hidden = {64, 64};
};

// ParseModelSpec accepts a built-in name ("cnn"), a canonical built-in spec
// with its shapes ("cnn-1x28x28-10", "mlp-30-2-64x64": name, input shape,
// outputs, MLP widths) or a path ending in ".pt"/".pth"; anything else is
// InvalidArgument listing the choices.
absl::StatusOr<ModelSpec> ParseModelSpec(const std::string& text);
// ModelSpecToString is the inverse of ParseModelSpec: the canonical spec
// (with shapes, once known) or the TorchScript path. The canonical spec of a
// built-in is what model directories and signatures record.
std::string ModelSpecToString(const ModelSpec& spec);
// IsBuiltinModel tells whether `spec` names a built-in (not TorchScript).
bool IsBuiltinModel(const ModelSpec& spec);

// ResolveModelShape fills a built-in spec's missing input shape and outputs
// from `inputs` (one example's shape: inputs.sizes()[1:]) and `outputs`
// (from the task and the targets; see OutputsFor in client/data). Shapes the
// spec already has must agree: InvalidArgument naming both otherwise. A
// TorchScript spec is returned as is.
absl::StatusOr<ModelSpec> ResolveModelShape(ModelSpec spec, const std::vector<int64_t>& input_shape,
                                            int64_t outputs);

// Model is the interface the Trainer and the inference runner use. The model
// takes a batch of float32 inputs [N, ...] and returns outputs [N, K] (logits
// or values) or [N]. Not thread-safe: one model per thread.
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
  // Forward returns the outputs for a batch.
  virtual at::Tensor Forward(const at::Tensor& input) = 0;
  // HasLoss tells whether the model brings its own loss: a TorchScript
  // module with a `loss(outputs, targets)` method. The Trainer then trains
  // on Loss instead of the task's loss (the task's metrics still apply).
  virtual bool HasLoss() const { return false; }
  // Loss returns the model's own loss of a batch, averaged over it. Only
  // when HasLoss(); throws c10::Error like Forward.
  virtual at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets);
  virtual void SetTraining(bool training) = 0;
  // To moves the model to `device`.
  virtual void To(const c10::Device& device) = 0;
  // Export returns the bytes of a file PyTorch reads, holding the model's
  // current weights (on the CPU):
  //  - a TorchScript model: the module, code and weights, for
  //    torch.jit.load(path);
  //  - any other model: its state dict, a dict of GetParameters()'s names to
  //    tensors in that order, in the zip format torch.save writes, for
  //    model.load_state_dict(torch.load(path)) on a module with the same
  //    parameter names (for a built-in, BuiltinPythonModule's).
  // Internal (with LibTorch's message) when LibTorch fails; the model is
  // unchanged either way.
  //
  // Example:
  //   SHOAL_ASSIGN_OR_RETURN(std::string bytes, model->Export());
  //   SHOAL_RETURN_IF_ERROR(WriteFileAtomically("model.pt", bytes));
  virtual absl::StatusOr<std::string> Export() const;
};

// CreateModel builds the model `spec` names, initialized from `seed`
// (built-ins, whose shapes must be resolved) or from the file
// (TorchScript). Errors name the file, the unknown model or the missing
// shape.
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec,
                                                   uint64_t seed = 0);

// CreateModelFromCode builds the model `code` names: a built-in initialized
// from `seed`, or a TorchScript model loaded from `code.torchscript` (from
// memory: the bytes a signature covers are the bytes that run, with no file
// in between). InvalidArgument for an unknown built-in, TorchScript bytes
// that do not load, or a spec and bytes that disagree.
absl::StatusOr<std::unique_ptr<Model>> CreateModelFromCode(const ModelCode& code,
                                                           uint64_t seed = 0);

// BuiltinPythonModule returns the source of a Python module that builds the
// built-in `spec` (its shapes resolved, e.g. ParseModelSpec("cnn-1x28x28-10"))
// in PyTorch: a `Model` class (torch.nn.Module) with the same layers, the
// same parameter names and the same forward() as the C++ one, so the state
// dict Model::Export writes loads with strict=True, and a `load(path)`
// helper that builds the model, loads the weights and sets eval mode.
// InvalidArgument for a TorchScript spec (it brings its own code) or one
// whose shapes are missing or out of bounds.
//
// Example (Python, with the files `shoal export` writes):
//   import model                      # model.py, this module
//   net = model.load("model.pt")      # torch.load + load_state_dict
//   logits = net(inputs)              # inputs normalized as in training
absl::StatusOr<std::string> BuiltinPythonModule(const ModelSpec& spec);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_MODEL_H_
