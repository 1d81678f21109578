// edge_app: an application on a device that embeds Shoal's device runtime.
//
//   edge_app run --config RUN.json (--data-dir DIR | --partition P)
//                --pki-dir BUNDLE --state-dir DIR --endpoint unix:PATH
//                [--server HOST:PORT] [--probe IMAGES] [--seconds N]
//     Opens a shoal::Device: it serves the newest serving version on disk at
//     once, answers other processes on the endpoint, takes part in every run
//     of the federation (`shoal serve`) it can reach, and takes the serving
//     versions the server rolls out. The application itself predicts on
//     the first example of --probe (read as training reads its data) every
//     second and logs when the serving version that answers changes. Runs
//     until SIGINT/SIGTERM (or N seconds).
//
//   edge_app ask ENDPOINT IMAGES [--config RUN.json] [--limit N]
//     The small client of the endpoint, as another process on the device
//     would be: reads IMAGES (IDX or PGM; with --config, in its data format
//     and normalization), asks the device about the first N (default 8) and
//     prints each prediction and the serving version that made it. (One
//     request carries at most 4 MiB and 1024 rows.)
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "shoal/config.h"
#include "shoal/data.h"
#include "shoal/device.h"
#include "shoal/model.h"

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void OnSignal(int) { stop_requested = 1; }

// Flags: --name value pairs after the verb.
std::map<std::string, std::string> ParseFlags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) == 0) flags[argv[i] + 2] = argv[i + 1];
  }
  return flags;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "edge_app: %s\n", std::string(status.message()).c_str());
  return absl::IsInvalidArgument(status) ? 2 : 1;
}

int Run(std::map<std::string, std::string> flags) {
  shoal::DeviceOptions options;
  options.config = flags["config"];
  options.data_dir = flags["data-dir"];
  options.partition = flags.count("partition") ? std::stoi(flags["partition"]) : -1;
  options.pki_dir = flags["pki-dir"];
  options.state_dir = flags["state-dir"];
  options.endpoint = flags["endpoint"];
  options.server = flags["server"];
  const int seconds = flags.count("seconds") ? std::stoi(flags["seconds"]) : 0;
  absl::StatusOr<std::unique_ptr<shoal::Device>> device = shoal::Device::Open(options);
  if (!device.ok()) return Fail(device.status());
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  (*device)->Start();
  std::printf("device %s: serving version %lld on %s\n", (*device)->id().c_str(),
              static_cast<long long>((*device)->serving_version()), options.endpoint.c_str());
  std::fflush(stdout);
  // The application's own use of the model: one prediction a second.
  at::Tensor probe;
  if (flags.count("probe")) {
    absl::StatusOr<shoal::ExperimentConfig> config = shoal::LoadExperimentConfig(options.config);
    if (!config.ok()) return Fail(config.status());
    absl::StatusOr<shoal::Dataset> inputs = shoal::LoadInputs(
        config->data, flags["probe"], shoal::Task(config->task));
    if (!inputs.ok()) return Fail(inputs.status());
    probe = inputs->inputs.slice(0, 0, 1);
  }
  int64_t last_version = -1;
  for (int tick = 0; !stop_requested && (seconds == 0 || tick < seconds); ++tick) {
    int64_t version = (*device)->serving_version();
    if (probe.defined()) {
      absl::StatusOr<shoal::DevicePrediction> p = (*device)->Predict(probe);
      version = p.ok() ? p->serving_version : 0;
    }
    if (version != last_version) {
      std::printf("the application now predicts with serving version %lld\n",
                  static_cast<long long>(version));
      std::fflush(stdout);
      last_version = version;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  (*device)->Stop();
  std::printf("stopped; serving version %lld\n",
              static_cast<long long>((*device)->serving_version()));
  return 0;
}

int Ask(const std::string& endpoint, const std::string& images,
        std::map<std::string, std::string> flags) {
  shoal::DataOptions data;
  shoal::Task task;
  if (flags.count("config")) {
    absl::StatusOr<shoal::ExperimentConfig> config = shoal::LoadExperimentConfig(flags["config"]);
    if (!config.ok()) return Fail(config.status());
    data = config->data;
    task = shoal::Task(config->task);
  }
  absl::StatusOr<shoal::Dataset> inputs = shoal::LoadInputs(data, images, task);
  if (!inputs.ok()) return Fail(inputs.status());
  const int64_t limit = flags.count("limit") ? std::stoll(flags["limit"]) : 8;
  absl::StatusOr<shoal::DevicePrediction> answer =
      shoal::AskDevice(endpoint, inputs->inputs.slice(0, 0, limit));
  if (!answer.ok()) return Fail(answer.status());
  const at::Tensor classes = answer->outputs.argmax(1);
  for (int64_t i = 0; i < classes.size(0); ++i) {
    std::printf("%lld\t%lld\n", static_cast<long long>(i),
                static_cast<long long>(classes[i].item<int64_t>()));
  }
  std::printf("answered by serving version %lld\n",
              static_cast<long long>(answer->serving_version));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return Run(ParseFlags(argc, argv, 2));
  if (argc >= 4 && std::strcmp(argv[1], "ask") == 0) {
    return Ask(argv[2], argv[3], ParseFlags(argc, argv, 4));
  }
  std::fprintf(stderr,
               "usage: %s run --config RUN.json (--data-dir DIR | --partition P) --pki-dir "
               "BUNDLE --state-dir DIR --endpoint unix:PATH [--server HOST:PORT] [--seconds N]\n"
               "       %s ask ENDPOINT IMAGES [--config RUN.json] [--limit N]\n",
               argv[0], argv[0]);
  return 2;
}
