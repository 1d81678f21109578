// compression_bench: what compressing an update costs, against training it.
// One real local round of the main job's CNN (Trainer::Fit on Fashion-MNIST
// examples, one LibTorch thread, as a device or simulation worker runs),
// then for each scheme: the client's cost (CompressUpdate, and its decoding
// of its own payload, as LocalClient does), the server's (ParseFitUpload on
// the serialized upload), the bytes, and the update's error.
//
// Usage: compression_bench [--examples 3200] [--repeats 5] [--block 256]
//                          [--fraction 0.01]
// Prints one row per scheme; times are the median of the repeats.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "client/data/dataset.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/update_compression.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double Seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace shoal;
  int64_t examples = 3200;
  int repeats = 5;
  int64_t block = 256;
  double fraction = 0.01;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--examples")) examples = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats")) repeats = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--block")) block = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--fraction")) fraction = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (examples < 1 || repeats < 1) {
    std::fprintf(stderr, "--examples and --repeats must be >= 1\n");
    return 2;
  }
  client::SetComputeThreads(1);
  absl::StatusOr<client::Dataset> data =
      client::LoadIdxDir("/usr/share/datasets/fashion-mnist", /*test=*/false);
  if (!data.ok()) {
    std::fprintf(stderr, "%s\n", std::string(data.status().message()).c_str());
    return 1;
  }
  const client::Dataset part{data->inputs.narrow(0, 0, std::min(examples, data->size())),
                             data->targets.narrow(0, 0, std::min(examples, data->size()))};
  std::unique_ptr<client::Model> model =
      *client::CreateModel(*client::ParseModelSpec("cnn-1x28x28-10"), 42);
  const Parameters global = model->GetParameters().Clone();
  client::Trainer trainer = *client::Trainer::Create(client::TrainerOptions{});
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(32);
  config.set_learning_rate(0.05);
  config.set_momentum(0.9);
  absl::StatusOr<client::FitOutcome> outcome;
  const double train_s = Seconds([&] { outcome = trainer.Fit(*model, global, part, config, 1); });
  if (!outcome.ok()) {
    std::fprintf(stderr, "%s\n", std::string(outcome.status().message()).c_str());
    return 1;
  }
  const Parameters& update = outcome->update;
  const double update_norm = update.L2Norm();
  std::printf("CNN, %lld parameters; one local round on %lld examples: %.2f s\n",
              static_cast<long long>(global.NumElements()),
              static_cast<long long>(part.size()), train_s);
  std::printf("%-6s %12s %8s %12s %12s %10s %10s\n", "scheme", "bytes", "of full",
              "client ms", "server ms", "of round", "rel. err");
  double full_bytes = 0;
  for (Compression kind : {Compression::kNone, Compression::kQuantize8, Compression::kQuantize4,
                           Compression::kTopK}) {
    const CompressionOptions options{kind, block, fraction};
    std::vector<double> client_s, server_s;
    std::string bytes;
    Parameters decoded;
    for (int r = 0; r < repeats; ++r) {
      std::map<std::string, at::Tensor> residuals;
      v1::UpdateProto wire;
      client_s.push_back(Seconds([&] {
        if (!CompressUpdate(update, options, 7, &residuals, &wire).ok()) std::abort();
        if (kind != Compression::kNone && !DecompressUpdate(global, wire).ok()) std::abort();
        bytes = wire.SerializeAsString();
      }));
      Parameters aux;
      server_s.push_back(Seconds([&] {
        if (!ParseFitUpload(bytes, global, &decoded, &aux).ok()) std::abort();
      }));
    }
    if (kind == Compression::kNone) full_bytes = static_cast<double>(bytes.size());
    double err2 = 0;
    for (size_t i = 0; i < update.size(); ++i) {
      err2 += (decoded.tensor(i).to(at::kDouble) - update.tensor(i).to(at::kDouble))
                  .pow(2)
                  .sum()
                  .item<double>();
    }
    const double client_ms = Median(client_s) * 1e3, server_ms = Median(server_s) * 1e3;
    std::printf("%-6s %12zu %7.2f%% %12.1f %12.1f %9.2f%% %10.4f\n", CompressionName(kind),
                bytes.size(), 100.0 * static_cast<double>(bytes.size()) / full_bytes, client_ms,
                server_ms, 100.0 * (client_ms / 1e3) / train_s, std::sqrt(err2) / update_norm);
  }
  std::printf("(client ms: compress and decode its own payload; server ms: parse and decode "
              "the upload; of round: client ms / the local round's time; rel. err: "
              "||decoded - update|| / ||update||, one round, top-k before error feedback)\n");
  return 0;
}
