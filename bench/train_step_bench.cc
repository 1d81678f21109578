// train_step_bench: one local training step in Shoal (Trainer::Fit, which
// also loads the global weights and computes the update) against the same
// step in a bare LibTorch loop, same model, batch and data, in one run.
//
// Usage: train_step_bench [--model cnn|2nn|mlp|FILE.pt] [--batch 32]
//                         [--steps 50] [--threads 1] [--repeats 5]
//   cnn, 2nn  Fashion-MNIST-shaped built-ins (1 x 28 x 28 -> 10)
//   mlp       the tabular MLP: 30 features -> 64 -> 64 -> 2 classes
//   FILE.pt   a TorchScript model taking 1 x 28 x 28 (e.g. the tests'
//             build/tests/tiny_mlp.pt); the bare loop trains the same
//             scripted module with torch::jit directly
// Prints ms per step for both and their ratio (Shoal / bare; 1.0 = no
// overhead). Repeats alternate the two so machine noise hits both alike.
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bare_models.h"
#include "client/data/source.h"
#include "client/model.h"
#include "client/trainer.h"

namespace {

using shoal::bench::BareCnn;
using shoal::bench::BareMlp;

// BareTabularMlp: the layers Shoal's "mlp-30-2-64x64" has.
struct BareTabularMlp : torch::nn::Module {
  BareTabularMlp() {
    fc1 = register_module("fc1", torch::nn::Linear(30, 64));
    fc2 = register_module("fc2", torch::nn::Linear(64, 64));
    fc3 = register_module("fc3", torch::nn::Linear(64, 2));
  }
  torch::Tensor forward(torch::Tensor x) {
    return fc3(torch::relu(fc2(torch::relu(fc1(x.flatten(1))))));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
};

// BareScript wraps a TorchScript module like a torch::nn::Module for the
// bare loop: one module loaded once from the file and reused, so the JIT's
// profiling runs happen in the warm-up, as they do for Shoal's model.
struct BareScript {
  static std::string path;
  static torch::jit::Module& Shared() {
    static torch::jit::Module* module = new torch::jit::Module(torch::jit::load(path));
    return *module;
  }
  BareScript() : module(Shared()) { module.train(); }
  std::vector<torch::Tensor> parameters() {
    std::vector<torch::Tensor> out;
    for (const auto& p : module.parameters()) out.push_back(p);
    return out;
  }
  torch::Tensor forward(const torch::Tensor& x) { return module.forward({x}).toTensor(); }
  torch::jit::Module module;
};
std::string BareScript::path;

template <typename Net>
double BareSeconds(const torch::Tensor& x, const torch::Tensor& y, int64_t batch, double lr) {
  auto net = std::make_shared<Net>();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(lr).momentum(0.9));
  const auto start = std::chrono::steady_clock::now();
  // Shuffled batches, as any real training loop draws them (Shoal does too).
  const torch::Tensor perm = torch::randperm(x.size(0), torch::kLong);
  for (int64_t b = 0; b + batch <= x.size(0); b += batch) {
    const torch::Tensor idx = perm.slice(0, b, b + batch);
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net->forward(x.index_select(0, idx)),
                                                     y.index_select(0, idx));
    loss.backward();
    opt.step();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "cnn";
  int64_t batch = 32, steps = 50, repeats = 5;
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--batch")) batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats")) repeats = std::stoll(argv[i + 1]);
    else { std::fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
  }
  const bool script = model.size() > 3 && model.substr(model.size() - 3) == ".pt";
  if (model != "cnn" && model != "2nn" && model != "mlp" && !script) {
    std::fprintf(stderr, "--model cnn|2nn|mlp|FILE.pt\n");
    return 2;
  }
  shoal::client::SetComputeThreads(threads);
  torch::manual_seed(0);
  const int64_t n = batch * steps;
  const bool tabular = model == "mlp";
  const std::vector<int64_t> shape = tabular ? std::vector<int64_t>{30} : std::vector<int64_t>{1, 28, 28};
  const int64_t classes = tabular ? 2 : 10;
  std::vector<int64_t> sizes = {n};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  shoal::client::Dataset data{torch::randn(sizes), torch::randint(0, classes, {n}, torch::kLong)};

  auto spec = *shoal::client::ParseModelSpec(model);
  if (tabular) spec.hidden = {64, 64};
  if (script) BareScript::path = model;
  auto shoal_model = *shoal::client::CreateModel(
      *shoal::client::ResolveModelShape(spec, shape, classes), 0);
  const auto bare = [&] {
    if (model == "cnn") return BareSeconds<BareCnn>(data.inputs, data.targets, batch, 0.01);
    if (model == "2nn") return BareSeconds<BareMlp>(data.inputs, data.targets, batch, 0.01);
    if (tabular) return BareSeconds<BareTabularMlp>(data.inputs, data.targets, batch, 0.01);
    return BareSeconds<BareScript>(data.inputs, data.targets, batch, 0.01);
  };
  auto trainer = *shoal::client::Trainer::Create({});
  const shoal::Parameters global = shoal_model->GetParameters().Clone();
  shoal::v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(batch);
  config.set_learning_rate(0.01);
  config.set_momentum(0.9);

  // One warm-up each (allocator, oneDNN primitive caches).
  (void)trainer.Fit(*shoal_model, global, data, config, 0);
  bare();

  std::vector<double> shoal_s, bare_s;
  for (int64_t r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto fit = trainer.Fit(*shoal_model, global, data, config, static_cast<uint32_t>(r + 1));
    shoal_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!fit.ok()) { std::fprintf(stderr, "fit failed: %s\n", std::string(fit.status().message()).c_str()); return 1; }
    bare_s.push_back(bare());
  }
  std::sort(shoal_s.begin(), shoal_s.end());
  std::sort(bare_s.begin(), bare_s.end());
  const double shoal_ms = 1000 * shoal_s[repeats / 2] / steps;
  const double bare_ms = 1000 * bare_s[repeats / 2] / steps;
  std::printf("model %s, batch %lld, %lld steps x %lld repeats, %d thread(s)\n", model.c_str(),
              static_cast<long long>(batch), static_cast<long long>(steps),
              static_cast<long long>(repeats), threads);
  std::printf("shoal Trainer::Fit : %.2f ms/step (median)\n", shoal_ms);
  std::printf("bare LibTorch loop : %.2f ms/step (median)\n", bare_ms);
  std::printf("ratio shoal/bare   : %.3f\n", shoal_ms / bare_ms);
  return 0;
}
