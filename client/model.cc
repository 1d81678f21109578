#include "client/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cmath>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "common/signing.h"
#include "common/status.h"

namespace shoal::client {
namespace {

constexpr const char* kTorchScriptName = kTorchScriptModelSpec;
constexpr char kChoices[] =
    "expected one of: cnn, 2nn, logreg, mlp, or a TorchScript file path ending in "
    ".pt or .pth";

// LibTorch reports errors by throwing; these turn whatever escaped a call
// into a Status carrying LibTorch's own message (without the C++ backtrace,
// which is noise to a user).
absl::Status FromTorchError(const c10::Error& e, absl::string_view context) {
  return absl::InternalError(
      absl::StrCat(context, ": ", e.what_without_backtrace()));
}
absl::Status FromStdError(const std::exception& e, absl::string_view context) {
  return absl::InternalError(absl::StrCat(context, ": ", e.what()));
}

// ---------------------------------------------------------------- built-ins

// Net is the common base of the built-in modules so one Model class can
// hold any of them.
class NetImpl : public torch::nn::Module {
 public:
  virtual at::Tensor forward(at::Tensor x) = 0;
};

// The CNN of McMahan et al. 2017 ("Communication-Efficient Learning of Deep
// Networks from Decentralized Data") for [C, H, W] images: two 5x5
// convolutions (32 and 64 channels) each followed by 2x2 max pooling, a
// 512-unit layer and the output layer. On Fashion-MNIST (1 x 28 x 28, 10
// classes) it has 1,663,370 parameters.
class CnnImpl : public NetImpl {
 public:
  CnnImpl(const std::vector<int64_t>& in, int64_t outputs)
      : conv1_(register_module(
            "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in[0], 32, 5).padding(2)))),
        conv2_(register_module(
            "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)))),
        fc1_(register_module("fc1", torch::nn::Linear((in[1] / 4) * (in[2] / 4) * 64, 512))),
        fc2_(register_module("fc2", torch::nn::Linear(512, outputs))) {}

  at::Tensor forward(at::Tensor x) override {
    x = at::max_pool2d(at::relu(conv1_->forward(x)), {2, 2});
    x = at::max_pool2d(at::relu(conv2_->forward(x)), {2, 2});
    x = at::relu(fc1_->forward(x.flatten(1)));
    return fc2_->forward(x);
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::Conv2d conv2_;
  torch::nn::Linear fc1_;
  torch::nn::Linear fc2_;
};

// MlpImpl: the flattened input through fully connected ReLU layers of the
// given widths, then the output layer. The "2NN" of McMahan et al. is the
// MLP with widths {200, 200} (784-200-200-10 on Fashion-MNIST, 199,210
// parameters); multinomial logistic regression ("logreg") has none.
// Layers are named fc1, fc2, ... in order.
class MlpImpl : public NetImpl {
 public:
  MlpImpl(int64_t in, const std::vector<int64_t>& hidden, int64_t outputs) {
    int64_t width = in;
    for (size_t i = 0; i <= hidden.size(); ++i) {
      const int64_t next = i < hidden.size() ? hidden[i] : outputs;
      const std::string name = hidden.empty() ? "fc" : absl::StrCat("fc", i + 1);
      layers_.push_back(register_module(name, torch::nn::Linear(width, next)));
      width = next;
    }
  }

  at::Tensor forward(at::Tensor x) override {
    x = x.flatten(1);
    for (size_t i = 0; i < layers_.size(); ++i) {
      x = layers_[i]->forward(x);
      if (i + 1 < layers_.size()) x = at::relu(x);
    }
    return x;
  }

 private:
  std::vector<torch::nn::Linear> layers_;
};

// InitializeDeterministically redraws every parameter from a generator
// private to this call, seeded with `seed`. torch::manual_seed() would do
// the same through the process-wide generator, but that is global state:
// two threads building models at once would interleave their
// draws, and any other user of the global generator would shift ours. A
// private generator needs no lock and is reproducible regardless. (The
// modules' constructors still draw their default init from the global
// generator first; those values are overwritten here.)
//
// The distribution is PyTorch's default for Linear and Conv2d:
// kaiming_uniform_(a = sqrt(5)) for weights and U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) for biases, which both reduce to U(-b, b) with
// b = 1/sqrt(fan_in).
void InitializeDeterministically(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // fan_in of each layer, keyed by the layer's prefix ("conv1"), taken from
  // its weight; named_parameters() lists a layer's weight before its bias.
  absl::flat_hash_map<std::string, int64_t> fan_in;
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    const size_t dot = name.rfind('.');
    const std::string prefix =
        dot == std::string::npos ? std::string() : name.substr(0, dot);
    const std::string leaf =
        dot == std::string::npos ? name : name.substr(dot + 1);
    int64_t fan = 0;
    if (leaf == "weight" && p.dim() >= 2) {
      fan = p.numel() / p.size(0);
      fan_in[prefix] = fan;
    } else if (auto it = fan_in.find(prefix); it != fan_in.end()) {
      fan = it->second;
    } else {
      fan = p.numel();
    }
    const double bound =
        fan > 0 ? 1.0 / std::sqrt(static_cast<double>(fan)) : 0.0;
    p.uniform_(-bound, bound, gen);
  }
}

// AppendDetached adds `named` tensors to `out` detached (sharing storage),
// in order; `floating_only` drops integer buffers such as BatchNorm's
// num_batches_tracked, which are counters rather than weights.
void AppendDetached(const torch::OrderedDict<std::string, at::Tensor>& named,
                    bool floating_only, Parameters* out) {
  for (const auto& item : named) {
    const at::Tensor& t = item.value();
    if (floating_only && !at::isFloatingType(t.scalar_type())) continue;
    out->Add(item.key(), t.detach());
  }
}
template <typename NamedList>  // torch::jit::named_{parameter,buffer}_list
void AppendDetachedJit(const NamedList& named, bool floating_only,
                       Parameters* out) {
  for (const auto& item : named) {
    const at::Tensor& t = item.value;
    if (floating_only && !at::isFloatingType(t.scalar_type())) continue;
    out->Add(item.name, t.detach());
  }
}

// CopyInto copies `params` into `targets` (which GetParameters() returned,
// so they share the model's storage). Every source is first converted to
// its target's device and dtype; only then is anything written, so a
// failure (for instance an out-of-memory on a device transfer) leaves the
// model as it was. The final copy_ between same-shaped tensors on the same
// device does not allocate.
absl::Status CopyInto(const Parameters& params, Parameters* targets) {
  SHOAL_RETURN_IF_ERROR(targets->CheckCompatible(params));
  try {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> staged;
    staged.reserve(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      staged.push_back(params.tensor(i).detach().to(
          targets->tensor(i).device(), targets->tensor(i).scalar_type()));
    }
    for (size_t i = 0; i < params.size(); ++i) {
      targets->mutable_tensor(i).copy_(staged[i]);
    }
  } catch (const c10::Error& e) {
    return FromTorchError(e, "setting model parameters");
  } catch (const std::exception& e) {
    return FromStdError(e, "setting model parameters");
  }
  return absl::OkStatus();
}

class BuiltinModel : public Model {
 public:
  explicit BuiltinModel(std::shared_ptr<NetImpl> net) : net_(std::move(net)) {}

  Parameters GetParameters() const override {
    Parameters params;
    AppendDetached(net_->named_parameters(/*recurse=*/true),
                   /*floating_only=*/false, &params);
    AppendDetached(net_->named_buffers(/*recurse=*/true),
                   /*floating_only=*/true, &params);
    return params;
  }

  absl::Status SetParameters(const Parameters& params) override {
    Parameters targets = GetParameters();
    return CopyInto(params, &targets);
  }

  std::vector<at::Tensor> TrainableParameters() override {
    return net_->parameters(/*recurse=*/true);
  }

  at::Tensor Forward(const at::Tensor& input) override {
    return net_->forward(input);
  }

  void SetTraining(bool training) override { net_->train(training); }

  void To(const c10::Device& device) override { net_->to(device); }

 private:
  std::shared_ptr<NetImpl> net_;
};

// Bounds on a built-in's shapes, so a config or a spec from the network
// cannot ask for a model that exhausts memory: every dimension, the outputs
// and each width, and the parameter count (2^28 floats = 1 GiB).
constexpr int64_t kMaxDimension = int64_t{1} << 20;
constexpr int64_t kMaxInputElements = int64_t{1} << 26;
constexpr size_t kMaxInputDims = 8;
constexpr size_t kMaxHiddenLayers = 16;
constexpr int64_t kMaxParameters = int64_t{1} << 28;

bool IsBuiltinName(const std::string& name) {
  return name == "cnn" || name == "2nn" || name == "logreg" || name == "mlp";
}

// HiddenWidths is the widths of the MLP that implements the built-in
// `spec`: the 2NN's two 200-unit layers, logreg's none, the MLP's own.
std::vector<int64_t> HiddenWidths(const ModelSpec& spec) {
  if (spec.name == "2nn") return {200, 200};
  if (spec.name == "logreg") return {};
  return spec.hidden;
}

// CheckBuiltinShape refuses shapes a built-in cannot take or that would
// make it too large, before anything is allocated.
absl::Status CheckBuiltinShape(const ModelSpec& spec) {
  const std::string what = absl::StrCat("model '", spec.name, "'");
  if (spec.input_shape.empty() || spec.outputs < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " needs its input shape and number of outputs; they come from the data, or set "
              "model.input_shape and model.outputs in the config"));
  }
  if (spec.input_shape.size() > kMaxInputDims) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": an input has at most ", kMaxInputDims, " dimensions"));
  }
  int64_t elements = 1;
  for (const int64_t d : spec.input_shape) {
    if (d < 1 || d > kMaxDimension) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": input dimension ", d,
                                                     " is not in [1, ", kMaxDimension, "]"));
    }
    elements *= d;
    if (elements > kMaxInputElements) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": an input of more than ",
                                                     kMaxInputElements, " values"));
    }
  }
  if (spec.outputs > kMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", spec.outputs, " outputs; at most ", kMaxDimension));
  }
  int64_t params = 0;
  if (spec.name == "cnn") {
    if (spec.input_shape.size() != 3 || spec.input_shape[1] < 4 || spec.input_shape[2] < 4) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " takes images [channels, height, width] of at least 4 x 4, not [",
                       absl::StrJoin(spec.input_shape, ", "), "]"));
    }
    const int64_t c = spec.input_shape[0];
    const int64_t flat = (spec.input_shape[1] / 4) * (spec.input_shape[2] / 4) * 64;
    params = (c * 25 + 1) * 32 + (32 * 25 + 1) * 64 + (flat + 1) * 512 + 513 * spec.outputs;
  } else {
    const std::vector<int64_t> hidden = HiddenWidths(spec);
    if (hidden.size() > kMaxHiddenLayers) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": at most ", kMaxHiddenLayers, " hidden layers"));
    }
    int64_t width = elements;
    for (const int64_t h : hidden) {
      if (h < 1 || h > kMaxDimension) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": hidden width ", h, " is not in [1, ", kMaxDimension, "]"));
      }
      params += (width + 1) * h;
      width = h;
    }
    params += (width + 1) * spec.outputs;
  }
  if (params > kMaxParameters) {
    return absl::InvalidArgumentError(absl::StrCat(what, " would have ", params,
                                                   " parameters; at most ", kMaxParameters));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> CreateBuiltin(const ModelSpec& spec, uint64_t seed) {
  if (!IsBuiltinName(spec.name)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown model '", spec.name, "': ", kChoices));
  }
  SHOAL_RETURN_IF_ERROR(CheckBuiltinShape(spec));
  try {
    std::shared_ptr<NetImpl> net;
    if (spec.name == "cnn") {
      net = std::make_shared<CnnImpl>(spec.input_shape, spec.outputs);
    } else {
      int64_t in = 1;
      for (const int64_t d : spec.input_shape) in *= d;
      net = std::make_shared<MlpImpl>(in, HiddenWidths(spec), spec.outputs);
    }
    InitializeDeterministically(*net, seed);
    return std::unique_ptr<Model>(new BuiltinModel(std::move(net)));
  } catch (const c10::Error& e) {
    return FromTorchError(e, absl::StrCat("building model '", spec.name, "'"));
  } catch (const std::exception& e) {
    return FromStdError(e, absl::StrCat("building model '", spec.name, "'"));
  }
}

// --------------------------------------------------------------- TorchScript

class TorchScriptModel : public Model {
 public:
  explicit TorchScriptModel(torch::jit::Module module)
      : module_(std::move(module)) {}

  Parameters GetParameters() const override {
    Parameters params;
    AppendDetachedJit(module_.named_parameters(/*recurse=*/true),
                      /*floating_only=*/false, &params);
    AppendDetachedJit(module_.named_buffers(/*recurse=*/true),
                      /*floating_only=*/true, &params);
    return params;
  }

  absl::Status SetParameters(const Parameters& params) override {
    Parameters targets = GetParameters();
    return CopyInto(params, &targets);
  }

  std::vector<at::Tensor> TrainableParameters() override {
    std::vector<at::Tensor> out;
    for (const at::Tensor& p : module_.parameters(/*recurse=*/true)) {
      if (p.requires_grad()) out.push_back(p);
    }
    return out;
  }

  at::Tensor Forward(const at::Tensor& input) override {
    c10::IValue out = module_.forward({input});
    TORCH_CHECK(out.isTensor(), "TorchScript forward() returned ", out.tagKind(),
                ", expected a Tensor of outputs");
    return out.toTensor();
  }

  bool HasLoss() const override { return has_loss_; }

  at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets) override {
    c10::IValue out = module_.get_method("loss")({outputs, targets});
    TORCH_CHECK(out.isTensor() && out.toTensor().numel() == 1,
                "TorchScript loss() must return a scalar Tensor, got ", out.tagKind());
    return out.toTensor().reshape({});
  }

  void SetTraining(bool training) override { module_.train(training); }

  void To(const c10::Device& device) override { module_.to(device); }

  absl::StatusOr<std::string> Export() const override {
    try {
      // The module as loaded, with the weights SetParameters copied in: the
      // same archive format torch.jit.save writes.
      std::ostringstream out;
      module_.save(out);
      return std::move(out).str();
    } catch (const c10::Error& e) {
      return FromTorchError(e, "saving the TorchScript model");
    } catch (const std::exception& e) {
      return FromStdError(e, "saving the TorchScript model");
    }
  }

 private:
  // torch::jit::Module is a handle; its const methods still reach the
  // shared object, which GetParameters() const needs.
  torch::jit::Module module_;
  bool has_loss_ = module_.find_method("loss").has_value();
};

// ValidateForward runs `module` once on a zero input of one example of
// `input_shape` so a model that does not take the data fails at load, naming
// the file, rather than at the first training step with a stack of
// TorchScript frames. Without a shape (the data is not known yet) nothing
// is run; the Trainer checks the first batch's outputs instead.
absl::Status ValidateForward(torch::jit::Module& module, const std::string& path,
                             const std::vector<int64_t>& input_shape) {
  if (input_shape.empty()) return absl::OkStatus();
  std::vector<int64_t> batch = {1};
  batch.insert(batch.end(), input_shape.begin(), input_shape.end());
  const std::string input = absl::StrCat("[", absl::StrJoin(batch, ", "), "] float32 input");
  const bool was_training = module.is_training();
  absl::Status status;
  try {
    torch::NoGradGuard no_grad;
    // Eval mode: layers such as BatchNorm refuse a batch of one in training.
    module.eval();
    c10::IValue out = module.forward({at::zeros(batch)});
    if (!out.isTensor()) {
      status = absl::InvalidArgumentError(
          absl::StrCat("TorchScript model '", path, "': forward() on a ", input, " returned ",
                       out.tagKind(), ", expected a Tensor [1, outputs] or [1]"));
    } else {
      const at::Tensor outputs = out.toTensor();
      if (outputs.dim() < 1 || outputs.dim() > 2 || outputs.size(0) != 1) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "TorchScript model '", path, "': forward() on a ", input, " returned shape [",
            absl::StrJoin(outputs.sizes(), ", "), "], expected [1, outputs] or [1]"));
      } else if (!at::isFloatingType(outputs.scalar_type())) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "TorchScript model '", path, "': forward() returned dtype ",
            c10::toString(outputs.scalar_type()), ", expected floating-point outputs"));
      }
    }
  } catch (const c10::Error& e) {
    status = absl::InvalidArgumentError(absl::StrCat("TorchScript model '", path,
                                                     "' does not take the data: forward() failed "
                                                     "on a ",
                                                     input, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    // A TorchScript error carries the script's traceback; its last line says
    // what went wrong.
    absl::string_view what = absl::StripTrailingAsciiWhitespace(e.what());
    const size_t last = what.rfind('\n');
    if (last != absl::string_view::npos) what = what.substr(last + 1);
    status = absl::InvalidArgumentError(absl::StrCat("TorchScript model '", path,
                                                     "' does not take the data: forward() failed "
                                                     "on a ",
                                                     input, ": ", what));
  }
  try {
    module.train(was_training);
  } catch (const c10::Error& e) {
    if (status.ok()) status = FromTorchError(e, "restoring training mode");
  }
  return status;
}

absl::StatusOr<std::unique_ptr<Model>> LoadTorchScript(const std::string& path,
                                                       const std::vector<int64_t>& input_shape) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "model 'torchscript' needs a file path (ending in .pt or .pth)");
  }
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    return absl::NotFoundError(
        absl::StrCat("TorchScript model file '", path, "' not found"));
  }
  if (!std::filesystem::is_regular_file(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat("TorchScript model '", path, "' is not a regular file"));
  }
  torch::jit::Module module;
  try {
    // Loaded on the CPU; the Trainer decides the device.
    module = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load '", path,
        "' as a TorchScript model (save it with torch.jit.script(model)"
        ".save(path)): ",
        e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load '", path, "' as a TorchScript model: ", e.what()));
  }
  SHOAL_RETURN_IF_ERROR(ValidateForward(module, path, input_shape));
  return std::unique_ptr<Model>(new TorchScriptModel(std::move(module)));
}

// LoadTorchScriptBytes loads a TorchScript module from memory; `name` says
// where the bytes came from in errors.
absl::StatusOr<std::unique_ptr<Model>> LoadTorchScriptBytes(const std::string& bytes,
                                                            const std::string& name) {
  torch::jit::Module module;
  try {
    std::istringstream in(bytes);
    module = torch::jit::load(in, torch::kCPU);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load ", name, " as a TorchScript model: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load ", name, " as a TorchScript model: ", e.what()));
  }
  return std::unique_ptr<Model>(new TorchScriptModel(std::move(module)));
}

}  // namespace

at::Tensor Model::Loss(const at::Tensor& /*outputs*/, const at::Tensor& /*targets*/) {
  TORCH_CHECK(false, "this model has no loss of its own");
}

absl::StatusOr<std::string> Model::Export() const {
  try {
    // A c10::Dict keeps insertion order, and torch.load turns it into a
    // plain dict in that order: what load_state_dict wants.
    c10::Dict<std::string, at::Tensor> state;
    const Parameters params = GetParameters();
    for (size_t i = 0; i < params.size(); ++i) {
      state.insert(params.name(i), params.tensor(i).to(at::kCPU).contiguous());
    }
    const std::vector<char> bytes = torch::pickle_save(c10::IValue(std::move(state)));
    return std::string(bytes.begin(), bytes.end());
  } catch (const c10::Error& e) {
    return FromTorchError(e, "saving the model's state dict");
  } catch (const std::exception& e) {
    return FromStdError(e, "saving the model's state dict");
  }
}

absl::StatusOr<std::string> BuiltinPythonModule(const ModelSpec& spec) {
  if (!IsBuiltinModel(spec)) {
    return absl::InvalidArgumentError(
        "a TorchScript model brings its own code: it needs no Python module");
  }
  if (!IsBuiltinName(spec.name)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown model '", spec.name, "': ", kChoices));
  }
  SHOAL_RETURN_IF_ERROR(CheckBuiltinShape(spec));
  const std::string canonical = ModelSpecToString(spec);
  // Layers and forward() mirror CnnImpl and MlpImpl above, line for line.
  std::string layers;
  std::string forward;
  if (spec.name == "cnn") {
    const std::vector<int64_t>& in = spec.input_shape;
    absl::StrAppend(&layers, "        self.conv1 = nn.Conv2d(", in[0], ", 32, 5, padding=2)\n",
                    "        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)\n",
                    "        self.fc1 = nn.Linear(", (in[1] / 4) * (in[2] / 4) * 64, ", 512)\n",
                    "        self.fc2 = nn.Linear(512, ", spec.outputs, ")\n");
    forward =
        "        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n"
        "        x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n"
        "        x = F.relu(self.fc1(x.flatten(1)))\n"
        "        return self.fc2(x)\n";
  } else {
    const std::vector<int64_t> hidden = HiddenWidths(spec);
    int64_t width = 1;
    for (const int64_t d : spec.input_shape) width *= d;
    forward = "        x = x.flatten(1)\n";
    for (size_t i = 0; i <= hidden.size(); ++i) {
      const int64_t next = i < hidden.size() ? hidden[i] : spec.outputs;
      const std::string name = hidden.empty() ? "fc" : absl::StrCat("fc", i + 1);
      absl::StrAppend(&layers, "        self.", name, " = nn.Linear(", width, ", ", next, ")\n");
      absl::StrAppend(&forward,
                      i < hidden.size() ? "        x = F.relu(self." : "        return self.", name,
                      i < hidden.size() ? "(x))\n" : "(x)\n");
      width = next;
    }
  }
  return absl::StrCat(
      R"py("""Shoal's built-in model ')py", canonical, R"py(' in PyTorch, written by `shoal export`.

The layers, parameter names and forward() are those of the C++ model, so the
state dict `shoal export` wrote loads with strict=True:

    import model                    # this file, saved as model.py
    net = model.load("model.pt")    # or: net = model.Model()
                                    #     net.load_state_dict(torch.load("model.pt"))
    outputs = net(inputs)

`inputs` are float32 [N, )py",
      absl::StrJoin(spec.input_shape, ", "), R"py(], normalized as the model was trained
(the config's data.normalize); `outputs` are [N, )py",
      spec.outputs, R"py(]: logits (classification:
softmax; multi-label: sigmoid) or values (regression).
"""
import torch
from torch import nn
import torch.nn.functional as F

SPEC = ")py",
      canonical, R"py("
INPUT_SHAPE = ()py",
      absl::StrJoin(spec.input_shape, ", "), spec.input_shape.size() == 1 ? "," : "",
      R"py()
OUTPUTS = )py",
      spec.outputs, R"py(


class Model(nn.Module):
    def __init__(self):
        super().__init__()
)py",
      layers, R"py(
    def forward(self, x):
)py",
      forward, R"py(

def load(path, map_location="cpu"):
    """Builds the model, loads the weights `shoal export` wrote to `path`
    (strict: every name and shape must match) and sets eval mode."""
    model = Model()
    model.load_state_dict(torch.load(path, map_location=map_location))
    model.eval()
    return model
)py");
}

absl::StatusOr<ModelSpec> ParseModelSpec(const std::string& text) {
  ModelSpec spec;
  if (absl::EndsWith(text, ".pt") || absl::EndsWith(text, ".pth")) {
    spec.name = kTorchScriptName;
    spec.torchscript_path = text;
    return spec;
  }
  const std::vector<std::string> parts = absl::StrSplit(text, '-');
  const auto bad = [&text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("model spec '", text.substr(0, 64), "': ", why,
                                                   " (", kChoices, ")"));
  };
  if (!IsBuiltinName(parts[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown model '", text.substr(0, 64), "': ", kChoices));
  }
  spec.name = parts[0];
  if (parts.size() == 1) return spec;
  const size_t expected = spec.name == "mlp" ? 4 : 3;
  if (parts.size() != expected && !(spec.name == "mlp" && parts.size() == 3)) {
    return bad("expected NAME-INPUTSHAPE-OUTPUTS, e.g. cnn-1x28x28-10 or mlp-30-2-64x64");
  }
  const auto dims = [](absl::string_view field, std::vector<int64_t>* out) {
    out->clear();
    for (absl::string_view d : absl::StrSplit(field, 'x')) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(d, &v) || v < 1) return false;
      out->push_back(v);
    }
    return true;
  };
  std::vector<int64_t> outputs;
  if (!dims(parts[1], &spec.input_shape)) return bad("the input shape is not like 1x28x28");
  if (!dims(parts[2], &outputs) || outputs.size() != 1) return bad("the outputs are not a number");
  spec.outputs = outputs[0];
  if (spec.name == "mlp") {
    spec.hidden.clear();
    if (parts.size() == 4 && !dims(parts[3], &spec.hidden)) {
      return bad("the hidden widths are not like 64x64");
    }
  }
  SHOAL_RETURN_IF_ERROR(CheckBuiltinShape(spec));
  return spec;
}

std::string ModelSpecToString(const ModelSpec& spec) {
  if (spec.name == kTorchScriptName) return spec.torchscript_path;
  if (spec.input_shape.empty() || spec.outputs < 1) return spec.name;
  std::string out =
      absl::StrCat(spec.name, "-", absl::StrJoin(spec.input_shape, "x"), "-", spec.outputs);
  if (spec.name == "mlp" && !spec.hidden.empty()) {
    absl::StrAppend(&out, "-", absl::StrJoin(spec.hidden, "x"));
  }
  return out;
}

bool IsBuiltinModel(const ModelSpec& spec) { return spec.name != kTorchScriptName; }

absl::StatusOr<ModelSpec> ResolveModelShape(ModelSpec spec, const std::vector<int64_t>& input_shape,
                                            int64_t outputs) {
  if (!spec.input_shape.empty() && spec.input_shape != input_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model takes inputs [", absl::StrJoin(spec.input_shape, ", "),
        "] but the data's are [", absl::StrJoin(input_shape, ", "), "]"));
  }
  spec.input_shape = input_shape;
  if (!IsBuiltinModel(spec)) return spec;
  if (spec.outputs > 0 && spec.outputs != outputs) {
    return absl::InvalidArgumentError(absl::StrCat("the model has ", spec.outputs,
                                                   " outputs but the data and task need ",
                                                   outputs));
  }
  spec.outputs = outputs;
  SHOAL_RETURN_IF_ERROR(CheckBuiltinShape(spec));
  return spec;
}

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec, uint64_t seed) {
  if (spec.name == kTorchScriptName) {
    return LoadTorchScript(spec.torchscript_path, spec.input_shape);
  }
  return CreateBuiltin(spec, seed);
}

absl::StatusOr<std::unique_ptr<Model>> CreateModelFromCode(const ModelCode& code, uint64_t seed) {
  SHOAL_RETURN_IF_ERROR(ValidateModelSpec(code.spec));
  if (code.spec != kTorchScriptName) {
    if (!code.torchscript.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("built-in model '", code.spec.substr(0, 64),
                                                     "' was given TorchScript code"));
    }
    SHOAL_ASSIGN_OR_RETURN(ModelSpec spec, ParseModelSpec(code.spec));
    return CreateBuiltin(spec, seed);
  }
  if (code.torchscript.empty()) {
    return absl::InvalidArgumentError("a TorchScript model needs its code, and none was given");
  }
  return LoadTorchScriptBytes(code.torchscript,
                              absl::StrCat("code ", Sha256Hex(code.torchscript).substr(0, 16)));
}

}  // namespace shoal::client
