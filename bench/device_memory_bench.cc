// device_memory_bench: a device's peak memory while it serves predictions
// and while it trains (issue 16), against a bare LibTorch process doing the
// same with the same layers. Each mode runs in a forked child, so its peak
// resident set size (wait4's ru_maxrss) is its own; a child that only forks
// shows what every child starts with.
//
//   bare-serve   the 2NN in torch::nn, 2,000 single-example forwards
//   shoal-serve  the device's serving side: a ServingRuntime opened from a
//                signed serving version on disk, its LocalEndpoint listening
//                on a Unix socket, 2,000 single-example Predict calls
//   bare-train   the 2NN trained with SGD, 3 epochs over 6,000 examples
//   shoal-train  a LocalClient training the same (Trainer, batch 32)
//
// Usage: device_memory_bench
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "bench/bare_models.h"
#include "client/local_client.h"
#include "client/local_endpoint.h"
#include "client/serving_runtime.h"
#include "client/trainer.h"
#include "common/model_dir.h"
#include "common/sha256.h"

namespace {

using namespace shoal;
constexpr char kSpec[] = "2nn-1x28x28-10";
constexpr int kExamples = 6000;

client::Dataset Data() {
  torch::manual_seed(3);
  return {torch::rand({kExamples, 1, 28, 28}), torch::randint(0, 10, {kExamples}, torch::kLong)};
}

int RunChild(const std::string& mode, const std::string& dir) {
  client::SetComputeThreads(1);
  const torch::Tensor one = torch::rand({1, 1, 28, 28});
  if (mode == "bare-serve") {
    shoal::bench::BareMlp net;
    net.eval();
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 2000; ++i) (void)net.forward(one);
  } else if (mode == "shoal-serve") {
    auto verifier = *ModelVerifier::Load(dir + "/model-signing.pub");
    client::ServingRuntimeOptions options;
    options.store = {dir + "/serving", verifier, 2};
    auto runtime = *client::ServingRuntime::Open(options, nullptr);
    auto endpoint =
        *client::LocalEndpoint::Start({"unix:" + dir + "/" + std::to_string(getpid()) + ".sock"},
                                      &runtime->serving());
    for (int i = 0; i < 2000; ++i) {
      if (!runtime->serving().Predict(one).ok()) return 1;
    }
  } else if (mode == "bare-train") {
    client::Dataset data = Data();
    shoal::bench::BareMlp net;
    torch::optim::SGD sgd(net.parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    for (int epoch = 0; epoch < 3; ++epoch) {
      const torch::Tensor order = torch::randperm(kExamples, torch::kLong);
      for (int b = 0; b < kExamples; b += 32) {
        const torch::Tensor idx = order.slice(0, b, std::min(b + 32, kExamples));
        sgd.zero_grad();
        torch::Tensor loss = torch::cross_entropy_loss(net.forward(data.inputs.index_select(0, idx)),
                                                       data.targets.index_select(0, idx));
        loss.backward();
        sgd.step();
      }
    }
  } else if (mode == "shoal-train") {
    client::LocalClient local(*client::CreateModel(*client::ParseModelSpec(kSpec), 1),
                              *client::Trainer::Create({}), Data(), client::Dataset{});
    const Parameters global = local.model().GetParameters().Clone();
    v1::FitConfig config;
    config.set_local_epochs(3);
    config.set_batch_size(32);
    config.set_learning_rate(0.05);
    config.set_momentum(0.9);
    if (!local.Fit(global, config, 1).ok()) return 1;
  }
  return 0;
}

double PeakMb(const std::string& mode, const std::string& dir) {
  std::fflush(stdout);  // or the child inherits and repeats what is buffered
  const pid_t pid = fork();
  if (pid == 0) _exit(mode == "baseline" ? 0 : RunChild(mode, dir));
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s failed\n", mode.c_str());
    return -1;
  }
  return usage.ru_maxrss / 1024.0;
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/device_memory_bench.XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  // A signed serving version of the 2NN, as a device keeps it.
  auto keys = *GenerateModelSigningKey();
  std::FILE* pub = std::fopen((dir + "/model-signing.pub").c_str(), "w");
  std::fputs(keys.public_pem.c_str(), pub);
  std::fclose(pub);
  auto signer = *ModelSigner::FromPem(keys.private_pem);
  const std::string payload = SerializeParameters(
      (*client::CreateModel(*client::ParseModelSpec(kSpec), 1))->GetParameters());
  ModelRecord record;
  record.version = 1;
  record.model_spec = kSpec;
  record.serving = ServingOrigin{"bench", 0};
  record.signature = *signer->Sign(SignedModel{1, Sha256(payload), kSpec, "", record.serving});
  if (!WriteModelVersion(dir + "/serving", record, payload).ok()) return 1;

  const double base = PeakMb("baseline", dir);
  std::printf("baseline (fork only): %.0f MB\n", base);
  for (const char* what : {"serve", "train"}) {
    const double bare = PeakMb(std::string("bare-") + what, dir);
    const double shoal = PeakMb(std::string("shoal-") + what, dir);
    std::printf("%s: bare LibTorch %.0f MB, Shoal %.0f MB; over the baseline %.0f vs %.0f MB; "
                "ratio %.2f (whole process) / %.2f (over the baseline)\n",
                what, bare, shoal, bare - base, shoal - base, shoal / bare,
                (shoal - base) / std::max(1.0, bare - base));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
