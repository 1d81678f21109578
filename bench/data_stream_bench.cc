// data_stream_bench: what data.stream costs and saves. A client's training
// data held in memory (LoadData) against the same data spooled to disk and
// read back a batch at a time (OpenData with data.stream), each in a
// forked child so its peak memory is its own: the peak resident set size,
// the time to open the data, and the time of one epoch of training on it.
//
// Usage: data_stream_bench [--dir /usr/share/datasets/fashion-mnist]
//                          [--model 2nn] [--batch 32] [--repeats 3]
//                          [--spool-dir $TMPDIR]
// Prints one line per child and the medians; a baseline child that only
// forks shows what every child starts with (LibTorch, the parent's pages).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/data/source.h"
#include "client/model.h"
#include "client/trainer.h"

namespace {

using namespace shoal::client;

struct Figures {
  double peak_mb = 0;
  double open_s = 0;
  double epoch_s = 0;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// RunChild opens the training split (unless `mode` is "baseline") and
// trains one epoch, writing the timings to `out`; returns the exit code.
int RunChild(const std::string& mode, const DataOptions& base, const std::string& model,
             int64_t batch, int out) {
  double times[2] = {0, 0};
  if (mode != "baseline") {
    DataOptions options = base;
    options.stream = mode == "stream";
    const Task task{TaskOptions{}};
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::shared_ptr<const ExampleSource>> data =
        OpenData(options, Split::kTrain, task);
    if (!data.ok()) {
      std::fprintf(stderr, "%s: %s\n", mode.c_str(), data.status().ToString().c_str());
      return 1;
    }
    times[0] = Seconds(start);
    absl::StatusOr<ModelSpec> spec = ParseModelSpec(model);
    if (!spec.ok()) return 2;
    spec = ResolveModelShape(*spec, (*data)->input_shape(), 10);
    std::unique_ptr<Model> m = *CreateModel(*spec, 1);
    Trainer trainer = *Trainer::Create({});
    shoal::v1::FitConfig config;
    config.set_local_epochs(1);
    config.set_batch_size(batch);
    config.set_learning_rate(0.05);
    start = std::chrono::steady_clock::now();
    absl::StatusOr<FitOutcome> fit = trainer.Fit(*m, m->GetParameters().Clone(), **data, config, 1);
    if (!fit.ok()) {
      std::fprintf(stderr, "%s: %s\n", mode.c_str(), fit.status().ToString().c_str());
      return 1;
    }
    times[1] = Seconds(start);
  }
  return write(out, times, sizeof(times)) == sizeof(times) ? 0 : 1;
}

// Fork runs one child and returns its figures.
Figures Fork(const std::string& mode, const DataOptions& options, const std::string& model,
             int64_t batch) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) std::exit(1);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    _exit(RunChild(mode, options, model, batch, pipe_fds[1]));
  }
  close(pipe_fds[1]);
  double times[2] = {0, 0};
  const bool got = read(pipe_fds[0], times, sizeof(times)) == sizeof(times);
  close(pipe_fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "the %s child failed\n", mode.c_str());
    std::exit(1);
  }
  return Figures{usage.ru_maxrss / 1024.0, times[0], times[1]};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  DataOptions options;
  options.dir = "/usr/share/datasets/fashion-mnist";
  options.normalization.mode = Normalization::Mode::kGiven;
  options.normalization.mean = {0.2860};
  options.normalization.std = {0.3530};
  std::string model = "2nn";
  int64_t batch = 32;
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) options.dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--batch")) batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats")) repeats = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--spool-dir")) options.spool_dir = argv[i + 1];
    else { std::fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
  }
  SetComputeThreads(1);
  std::printf("data %s, model %s, batch %lld, one epoch of the training split, %d repeats\n",
              options.dir.c_str(), model.c_str(), static_cast<long long>(batch), repeats);
  const Figures baseline = Fork("baseline", options, model, batch);
  std::printf("baseline (fork only): peak %.0f MB\n", baseline.peak_mb);
  std::vector<double> peak[2], open[2], epoch[2];
  const char* modes[2] = {"memory", "stream"};
  for (int r = 0; r < repeats; ++r) {
    for (int m = 0; m < 2; ++m) {
      const Figures f = Fork(modes[m], options, model, batch);
      std::printf("%-6s peak %6.0f MB  open %6.2f s  epoch %6.2f s\n", modes[m], f.peak_mb,
                  f.open_s, f.epoch_s);
      peak[m].push_back(f.peak_mb);
      open[m].push_back(f.open_s);
      epoch[m].push_back(f.epoch_s);
    }
  }
  for (int m = 0; m < 2; ++m) {
    std::printf("median %-6s peak %6.0f MB (%.0f MB over baseline)  open %.2f s  epoch %.2f s\n",
                modes[m], Median(peak[m]), Median(peak[m]) - baseline.peak_mb, Median(open[m]),
                Median(epoch[m]));
  }
  std::printf("stream / memory: memory over baseline %.2f, epoch time %.2f\n",
              (Median(peak[1]) - baseline.peak_mb) / (Median(peak[0]) - baseline.peak_mb),
              Median(epoch[1]) / Median(epoch[0]));
  return 0;
}
