// predict_bench: a device's prediction path. ServingModel::Predict (the
// hot-swappable serving model, client/serving_model.h) against a bare
// LibTorch forward of the same layers on the same batch, in one run; then
// Predict's latency percentiles while new versions are swapped in.
//
// Usage: predict_bench [--model cnn|2nn] [--batch 1] [--calls 2000]
//                      [--repeats 5] [--swap-every-ms 20]
// Prints the median µs per call for both and their ratio (Shoal / bare; 1.0
// = no overhead), calling the two in turn so machine noise hits both alike
// (--calls x --repeats calls each); then
// p50 / p99 / max µs of Predict without swaps and with an Install every
// --swap-every-ms (24 versions, built beforehand), and how many predictions
// failed (goal: none).
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/bare_models.h"
#include "client/model.h"
#include "client/serving_model.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kPrebuilt = 24;  // versions swapped in (a CNN is 13 MB)
using shoal::client::ServingModel;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

std::unique_ptr<shoal::client::Model> Make(const std::string& name, uint64_t seed) {
  auto spec = shoal::client::ParseModelSpec(name + "-1x28x28-10");
  if (!spec.ok()) return nullptr;
  auto model = shoal::client::CreateModel(*spec, seed);
  return model.ok() ? *std::move(model) : nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_name = "cnn";
  int64_t batch = 1, calls = 2000, repeats = 5, swap_ms = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--model") model_name = v;
    else if (flag == "--batch") batch = std::atoll(v);
    else if (flag == "--calls") calls = std::atoll(v);
    else if (flag == "--repeats") repeats = std::atoll(v);
    else if (flag == "--swap-every-ms") swap_ms = std::atoll(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if ((model_name != "cnn" && model_name != "2nn") || batch < 1 || calls < 10 || repeats < 1) {
    std::fprintf(stderr, "usage: predict_bench [--model cnn|2nn] [--batch N] [--calls N]\n");
    return 2;
  }
  torch::set_num_threads(1);
  torch::manual_seed(1);
  const torch::Tensor x = torch::rand({batch, 1, 28, 28});

  ServingModel serving(/*batch_size=*/std::max<int64_t>(batch, 128));
  std::unique_ptr<shoal::client::Model> first = Make(model_name, 1);
  if (first == nullptr) return 1;
  const shoal::Parameters weights = first->GetParameters();
  if (!serving.Install(std::move(first), shoal::ModelRecord{}).ok()) return 1;
  std::shared_ptr<torch::nn::Module> bare;
  std::function<torch::Tensor(const torch::Tensor&)> bare_forward;
  if (model_name == "cnn") {
    auto m = std::make_shared<shoal::bench::BareCnn>();
    bare = m;
    bare_forward = [m](const torch::Tensor& in) { return m->forward(in); };
  } else {
    auto m = std::make_shared<shoal::bench::BareMlp>();
    bare = m;
    bare_forward = [m](const torch::Tensor& in) { return m->forward(in); };
  }
  bare->eval();
  {  // the same weights, so both compute the very same thing
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> params = bare->parameters();
    if (params.size() != weights.size()) return 1;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(weights.tensor(i));
  }

  // One Predict and one bare forward in turn, each timed alone, so drift in
  // the machine's load hits both alike, and who goes first alternates;
  // medians over every call.
  auto bare_call = [&] {
    torch::NoGradGuard no_grad;
    torch::Tensor out = bare_forward(x);
    return out.defined();
  };
  for (int64_t i = 0; i < 50; ++i) {  // warm-up
    if (!serving.Predict(x).ok() || !bare_call()) return 1;
  }
  std::vector<double> shoal_us, bare_us;
  for (int64_t i = 0; i < calls * repeats; ++i) {
    for (int turn = 0; turn < 2; ++turn) {  // who goes first alternates
      const auto start = Clock::now();
      if ((turn + i) % 2 == 0) {
        if (!serving.Predict(x).ok()) return 1;
        shoal_us.push_back(Micros(Clock::now() - start));
      } else {
        if (!bare_call()) return 1;
        bare_us.push_back(Micros(Clock::now() - start));
      }
    }
  }
  const double s = Percentile(shoal_us, 0.5), b = Percentile(bare_us, 0.5);
  std::printf("%s, batch %lld, 1 thread: Predict %.1f us, bare forward %.1f us (medians of %lld "
              "calls each), ratio %.3f\n",
              model_name.c_str(), static_cast<long long>(batch), s, b,
              static_cast<long long>(calls * repeats), s / b);

  // Latency percentiles with and without hot swaps.
  auto latencies = [&](bool swapping, int64_t* failed, int64_t* swaps) {
    std::vector<double> us;
    us.reserve(static_cast<size_t>(calls));
    // The versions to swap in are built beforehand: building one (weights
    // from disk, a TorchScript load) is the device's background work, not
    // the swap's, and on two cores it would compete with the predictions.
    std::vector<std::unique_ptr<shoal::client::Model>> versions;
    for (int64_t v = 0; swapping && v < kPrebuilt; ++v) {
      versions.push_back(Make(model_name, static_cast<uint64_t>(v + 2)));
    }
    std::atomic<bool> done{false};
    std::thread swapper([&] {
      for (size_t v = 0; v < versions.size() && !done.load(); ++v) {
        shoal::ModelRecord record;
        record.version = static_cast<int64_t>(v) + 2;
        if (serving.Install(std::move(versions[v]), record).ok()) ++*swaps;
        std::this_thread::sleep_for(std::chrono::milliseconds(swap_ms));
      }
    });
    // Until every version is in (and at least `calls` predictions).
    for (int64_t i = 0; i < calls || (swapping && *swaps < static_cast<int64_t>(versions.size()));
         ++i) {
      const auto start = Clock::now();
      if (!serving.Predict(x).ok()) ++*failed;
      us.push_back(Micros(Clock::now() - start));
    }
    done = true;
    swapper.join();
    return us;
  };
  int64_t failed = 0, swaps = 0;
  const std::vector<double> calm = latencies(false, &failed, &swaps);
  const std::vector<double> hot = latencies(true, &failed, &swaps);
  std::printf("Predict without swaps: p50 %.1f us, p99 %.1f us, max %.1f us\n",
              Percentile(calm, 0.5), Percentile(calm, 0.99), Percentile(calm, 1.0));
  std::printf("Predict during %lld swaps (one every %lld ms): p50 %.1f us, p99 %.1f us, "
              "max %.1f us; %lld failed\n",
              static_cast<long long>(swaps), static_cast<long long>(swap_ms),
              Percentile(hot, 0.5), Percentile(hot, 0.99), Percentile(hot, 1.0),
              static_cast<long long>(failed));
  return failed == 0 ? 0 : 1;
}
