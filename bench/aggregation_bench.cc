// aggregation_bench: what aggregation costs the server.
//
//   aggregation_bench fold [--params 10000000] [--updates 100] [--threads 1]
//     FedAvg's fold rate (GB of float32 updates folded per second) beside
//     memcpy of the same bytes, measured in the same run.
//   aggregation_bench memory --strategy fedavg|fedmedian --clients N [--params 100000]
//     Peak RSS of one round that aggregates N results. Updates are made one
//     at a time and dropped after Accept, as results arriving over the network
//     would be; run once per configuration (peak RSS only grows).
#include <sys/resource.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "strategies/registry.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

std::shared_ptr<const shoal::Parameters> Model(int64_t params) {
  auto p = std::make_shared<shoal::Parameters>();
  p->Add("w", at::zeros({params}));
  return p;
}

int Fold(int64_t params, int updates) {
  auto global = Model(params);
  auto strategy = *shoal::CreateStrategy("fedavg", nlohmann::json::object(), {});
  shoal::FitRes res;
  res.update.Add("w", at::randn({params}));
  res.num_examples = 10;
  const double gb = static_cast<double>(params) * 4 * updates / 1e9;

  auto agg = strategy->BeginAggregateFit(1, global);
  (void)agg->Accept("warmup", res);  // page in the accumulator
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < updates; ++i) (void)agg->Accept("c", res);
  const double fold_s = Seconds(start);

  std::vector<char> dst(params * 4);
  const char* src = static_cast<const char*>(res.update.tensor(0).data_ptr());
  std::memcpy(dst.data(), src, dst.size());
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < updates; ++i) {
    std::memcpy(dst.data(), src, dst.size());
    asm volatile("" : : "r"(dst.data()) : "memory");  // keep every copy
  }
  const double copy_s = Seconds(start);
  std::printf("fold: %d updates of %lld float32 parameters (%.2f GB)\n", updates,
              static_cast<long long>(params), gb);
  std::printf("FedAvg fold : %.2f GB/s (%.1f ms per update)\n", gb / fold_s,
              1000 * fold_s / updates);
  std::printf("memcpy      : %.2f GB/s\n", gb / copy_s);
  std::printf("ratio fold/memcpy: %.3f\n", (gb / fold_s) / (gb / copy_s));
  return 0;
}

int Memory(const std::string& name, int clients, int64_t params) {
  auto global = Model(params);
  nlohmann::json none = nlohmann::json::object();
  auto strategy = shoal::CreateStrategy(name, none, {});
  if (!strategy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(strategy.status().message()).c_str());
    return 2;
  }
  const double before = PeakRssMiB();
  auto agg = (*strategy)->BeginAggregateFit(1, global);
  for (int i = 0; i < clients; ++i) {
    shoal::FitRes res;  // one result in flight at a time
    res.update.Add("w", at::randn({params}));
    res.num_examples = 10;
    (void)agg->Accept("c" + std::to_string(100000 + i), res);
  }
  auto next = agg->Finish({});
  const double peak = PeakRssMiB();
  std::printf("memory: %s, %d clients, %lld parameters (%.1f MiB per update): peak RSS %.1f MiB "
              "(%.1f MiB above the process before aggregating)\n",
              name.c_str(), clients, static_cast<long long>(params), params * 4 / 1048576.0,
              peak, peak - before);
  return next.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s fold|memory [flags]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  int64_t params = mode == "fold" ? 10000000 : 100000;
  int updates = 100, clients = 10, threads = 1;
  std::string strategy = "fedavg";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--params")) params = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--updates")) updates = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--clients")) clients = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--strategy")) strategy = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else { std::fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
  }
  // LibTorch intra-op threads for the fold (the server's default is one per
  // core; 1 shows a single core's rate).
  at::set_num_threads(threads);
  std::printf("LibTorch threads: %d\n", threads);
  if (mode == "fold") return Fold(params, updates);
  if (mode == "memory") return Memory(strategy, clients, params);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
