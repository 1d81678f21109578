// The FedAvg paper's CNN and 2NN written directly against torch::nn, with
// no Shoal code: the baselines the benchmarks compare Shoal with.
#ifndef SHOAL_BENCH_BARE_MODELS_H_
#define SHOAL_BENCH_BARE_MODELS_H_

#include <torch/torch.h>

namespace shoal::bench {

struct BareCnn : torch::nn::Module {
  BareCnn() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 5).padding(2)));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)));
    fc1 = register_module("fc1", torch::nn::Linear(7 * 7 * 64, 512));
    fc2 = register_module("fc2", torch::nn::Linear(512, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);
    return fc2(torch::relu(fc1(x.flatten(1))));
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

struct BareMlp : torch::nn::Module {
  BareMlp() {
    fc1 = register_module("fc1", torch::nn::Linear(784, 200));
    fc2 = register_module("fc2", torch::nn::Linear(200, 200));
    fc3 = register_module("fc3", torch::nn::Linear(200, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(fc1(x.flatten(1)));
    return fc3(torch::relu(fc2(x)));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
};

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_BARE_MODELS_H_
