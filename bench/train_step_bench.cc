// train_step_bench: one local training step in Shoal (Trainer::Fit, which
// also loads the global weights and computes the update) against the same
// step in a bare LibTorch loop, same model, batch and data, in one run.
//
// Usage: train_step_bench [--model cnn|2nn] [--batch 32] [--steps 50]
//                         [--threads 1] [--repeats 5]
// Prints ms per step for both and their ratio (Shoal / bare; 1.0 = no
// overhead). Repeats alternate the two so machine noise hits both alike.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bare_models.h"
#include "client/model.h"
#include "client/trainer.h"

namespace {

using shoal::bench::BareCnn;
using shoal::bench::BareMlp;

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
  if (model != "cnn" && model != "2nn") { std::fprintf(stderr, "--model cnn|2nn\n"); return 2; }
  shoal::client::SetComputeThreads(threads);
  torch::manual_seed(0);
  const int64_t n = batch * steps;
  shoal::client::Dataset data{torch::randn({n, 1, 28, 28}), torch::randint(0, 10, {n}, torch::kLong)};

  auto shoal_model = *shoal::client::CreateModel({model, ""}, 0);
  auto trainer = *shoal::client::Trainer::Create({});
  const shoal::Parameters global = shoal_model->GetParameters().Clone();
  shoal::v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(batch);
  config.set_learning_rate(0.01);
  config.set_momentum(0.9);

  // One warm-up each (allocator, oneDNN primitive caches).
  (void)trainer.Fit(*shoal_model, global, data, config, 0);
  model == "cnn" ? BareSeconds<BareCnn>(data.inputs, data.targets, batch, 0.01)
                 : BareSeconds<BareMlp>(data.inputs, data.targets, batch, 0.01);

  std::vector<double> shoal_s, bare_s;
  for (int64_t r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto fit = trainer.Fit(*shoal_model, global, data, config, static_cast<uint32_t>(r + 1));
    shoal_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!fit.ok()) { std::fprintf(stderr, "fit failed: %s\n", std::string(fit.status().message()).c_str()); return 1; }
    bare_s.push_back(model == "cnn" ? BareSeconds<BareCnn>(data.inputs, data.targets, batch, 0.01)
                                    : BareSeconds<BareMlp>(data.inputs, data.targets, batch, 0.01));
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
