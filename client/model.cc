#include "client/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sha256.h"
#include "common/signing.h"
#include "common/status.h"

namespace shoal::client {
namespace {

constexpr const char* kTorchScriptName = kTorchScriptModelSpec;
constexpr char kChoices[] =
    "expected one of: cnn, 2nn, logreg, or a TorchScript file path ending in "
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
// Networks from Decentralized Data"), 1,663,370 parameters.
class CnnImpl : public NetImpl {
 public:
  CnnImpl()
      : conv1_(register_module(
            "conv1",
            torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 5).padding(2)))),
        conv2_(register_module(
            "conv2",
            torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)))),
        fc1_(register_module("fc1", torch::nn::Linear(7 * 7 * 64, 512))),
        fc2_(register_module("fc2", torch::nn::Linear(512, 10))) {}

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

// The "2NN" of the same paper: a 784-200-200-10 MLP, 199,210 parameters.
class TwoNnImpl : public NetImpl {
 public:
  TwoNnImpl()
      : fc1_(register_module("fc1", torch::nn::Linear(28 * 28, 200))),
        fc2_(register_module("fc2", torch::nn::Linear(200, 200))),
        fc3_(register_module("fc3", torch::nn::Linear(200, 10))) {}

  at::Tensor forward(at::Tensor x) override {
    x = at::relu(fc1_->forward(x.flatten(1)));
    x = at::relu(fc2_->forward(x));
    return fc3_->forward(x);
  }

 private:
  torch::nn::Linear fc1_;
  torch::nn::Linear fc2_;
  torch::nn::Linear fc3_;
};

// Multinomial logistic regression: a single 784 -> 10 linear layer.
class LogRegImpl : public NetImpl {
 public:
  LogRegImpl() : fc_(register_module("fc", torch::nn::Linear(28 * 28, 10))) {}

  at::Tensor forward(at::Tensor x) override {
    return fc_->forward(x.flatten(1));
  }

 private:
  torch::nn::Linear fc_;
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

absl::StatusOr<std::unique_ptr<Model>> CreateBuiltin(const std::string& name,
                                                     uint64_t seed) {
  try {
    std::shared_ptr<NetImpl> net;
    if (name == "cnn") {
      net = std::make_shared<CnnImpl>();
    } else if (name == "2nn") {
      net = std::make_shared<TwoNnImpl>();
    } else if (name == "logreg") {
      net = std::make_shared<LogRegImpl>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown model '", name, "': ", kChoices));
    }
    InitializeDeterministically(*net, seed);
    return std::unique_ptr<Model>(new BuiltinModel(std::move(net)));
  } catch (const c10::Error& e) {
    return FromTorchError(e, absl::StrCat("building model '", name, "'"));
  } catch (const std::exception& e) {
    return FromStdError(e, absl::StrCat("building model '", name, "'"));
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
    // Checked at load, but a scripted forward may branch on its input.
    TORCH_CHECK(out.isTensor(), "TorchScript forward() returned ",
                out.tagKind(), ", expected a Tensor of logits");
    return out.toTensor();
  }

  void SetTraining(bool training) override { module_.train(training); }

  void To(const c10::Device& device) override { module_.to(device); }

 private:
  // torch::jit::Module is a handle; its const methods still reach the
  // shared object, which GetParameters() const needs.
  torch::jit::Module module_;
};

// ValidateForward runs `module` once on a dummy image so a model that cannot
// serve as a classifier fails at load, naming the file, rather than at the
// first training step with a stack of TorchScript frames.
absl::Status ValidateForward(torch::jit::Module& module,
                             const std::string& path) {
  const bool was_training = module.is_training();
  absl::Status status;
  try {
    torch::NoGradGuard no_grad;
    // Eval mode: layers such as BatchNorm refuse a batch of one in training.
    module.eval();
    c10::IValue out = module.forward({at::zeros({1, 1, 28, 28})});
    if (!out.isTensor()) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "TorchScript model '", path, "': forward() returned ", out.tagKind(),
          ", expected a Tensor of logits [N, num_classes]"));
    } else {
      const at::Tensor logits = out.toTensor();
      if (logits.dim() != 2 || logits.size(0) != 1 || logits.size(1) < 1) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "TorchScript model '", path,
            "': forward() on a [1, 1, 28, 28] input returned shape [",
            absl::StrJoin(logits.sizes(), ", "),
            "], expected logits [1, num_classes]"));
      } else if (!at::isFloatingType(logits.scalar_type())) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "TorchScript model '", path, "': forward() returned dtype ",
            c10::toString(logits.scalar_type()),
            ", expected floating-point logits"));
      }
    }
  } catch (const c10::Error& e) {
    status = absl::InvalidArgumentError(
        absl::StrCat("TorchScript model '", path,
                     "': forward() failed on a [1, 1, 28, 28] float32 input: ",
                     e.what_without_backtrace()));
  } catch (const std::exception& e) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "TorchScript model '", path,
        "': forward() failed on a [1, 1, 28, 28] float32 input: ", e.what()));
  }
  try {
    module.train(was_training);
  } catch (const c10::Error& e) {
    if (status.ok()) status = FromTorchError(e, "restoring training mode");
  }
  return status;
}

absl::StatusOr<std::unique_ptr<Model>> LoadTorchScript(
    const std::string& path) {
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
  SHOAL_RETURN_IF_ERROR(ValidateForward(module, path));
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
  SHOAL_RETURN_IF_ERROR(ValidateForward(module, name));
  return std::unique_ptr<Model>(new TorchScriptModel(std::move(module)));
}

}  // namespace

absl::StatusOr<ModelSpec> ParseModelSpec(const std::string& text) {
  ModelSpec spec;
  if (text == "cnn" || text == "2nn" || text == "logreg") {
    spec.name = text;
    return spec;
  }
  if (absl::EndsWith(text, ".pt") || absl::EndsWith(text, ".pth")) {
    spec.name = kTorchScriptName;
    spec.torchscript_path = text;
    return spec;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown model '", text, "': ", kChoices));
}

std::string ModelSpecToString(const ModelSpec& spec) {
  if (spec.name == kTorchScriptName) return spec.torchscript_path;
  return spec.name;
}

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec,
                                                   uint64_t seed) {
  if (spec.name == kTorchScriptName) {
    return LoadTorchScript(spec.torchscript_path);
  }
  return CreateBuiltin(spec.name, seed);
}

absl::StatusOr<std::unique_ptr<Model>> CreateModelFromCode(const ModelCode& code, uint64_t seed) {
  SHOAL_RETURN_IF_ERROR(ValidateModelSpec(code.spec));
  if (code.spec != kTorchScriptName) {
    if (!code.torchscript.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("built-in model '", code.spec.substr(0, 64),
                                                     "' was given TorchScript code"));
    }
    return CreateBuiltin(code.spec, seed);
  }
  if (code.torchscript.empty()) {
    return absl::InvalidArgumentError("a TorchScript model needs its code, and none was given");
  }
  return LoadTorchScriptBytes(code.torchscript,
                              absl::StrCat("code ", Sha256Hex(code.torchscript).substr(0, 16)));
}

}  // namespace shoal::client
