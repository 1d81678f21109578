// simulation_bench: the simulator's figures for docs/benchmarks.md.
//
//   simulation_bench throughput [--clients 40] [--workers 0]
//     Client updates per second for the 2NN on Fashion-MNIST (E = 1, B = 32,
//     600 examples a client) through `shoal sim`'s engine, beside a bare
//     sequential LibTorch loop doing the same training in the same run
//     (default intra-op threads, as a researcher's for-loop would). The
//     ratio is the simulator's efficiency.
//   simulation_bench memory --clients N --per-round K [--model logreg]
//                           [--examples 60] [--rounds 1] [--workers 0]
//     What N registered idle clients cost (bytes each, measured as RSS and
//     as the simulator's own count), then a run of K clients per round and
//     the process's peak RSS.
//   simulation_bench accuracy [--target 0.85] [--max-rounds 300]
//     Rounds, real time and simulated time until the 2NN reaches the target
//     test accuracy with 100 clients, Dirichlet alpha = 0.5, 10 per round.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/bare_models.h"
#include "experiment/experiment_config.h"
#include "experiment/simulation_run.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/trainer.h"
#include "common/random.h"
#include "simulation/client_data.h"
#include "simulation/population.h"

namespace {

using nlohmann::json;
using shoal::ExperimentConfig;
using shoal::SimulationResult;

// Flags: --name value pairs after the subcommand.
std::map<std::string, std::string> ParseFlags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) {
      std::fprintf(stderr, "expected --flag value, got %s\n", argv[i]);
      std::exit(2);
    }
    flags[argv[i] + 2] = argv[i + 1];
  }
  return flags;
}

double Flag(const std::map<std::string, std::string>& f, const std::string& name, double def) {
  auto it = f.find(name);
  return it == f.end() ? def : std::atof(it->second.c_str());
}

std::string Flag(const std::map<std::string, std::string>& f, const std::string& name,
                 const std::string& def) {
  auto it = f.find(name);
  return it == f.end() ? def : it->second;
}

// StatusKiB reads a "VmRSS:"-style line of /proc/self/status.
long StatusKiB(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
  }
  return -1;
}

std::string TempOutput() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/shoal-simbench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return dir;
}

ExperimentConfig Config(const json& j) {
  auto config = shoal::ParseExperimentConfig(j.dump(), "benchmark config");
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    std::exit(2);
  }
  return *config;
}

SimulationResult Simulate(const ExperimentConfig& config) {
  auto result = shoal::RunSimulation(config);
  if (!result.ok()) {
    std::fprintf(stderr, "simulation failed: %s\n", std::string(result.status().message()).c_str());
    std::exit(1);
  }
  std::filesystem::remove_all(config.output_dir);
  return *result;
}

using shoal::bench::BareMlp;

// BareClientUpdates trains `clients` clients of 600 examples one after the
// other: load the global weights, one shuffled epoch of SGD at B = 32, take
// the difference. Returns the seconds taken.
double BareClientUpdates(const shoal::client::Dataset& train, int clients) {
  auto net = std::make_shared<BareMlp>();
  std::vector<torch::Tensor> global;
  for (const auto& p : net->parameters()) global.push_back(p.detach().clone());
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) {
    torch::Tensor x = train.inputs.slice(0, c * 600, (c + 1) * 600);
    torch::Tensor y = train.targets.slice(0, c * 600, (c + 1) * 600);
    {
      torch::NoGradGuard no_grad;
      auto params = net->parameters();
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(global[i]);
    }
    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    const torch::Tensor perm = torch::randperm(600, torch::kLong);
    for (int64_t b = 0; b < 600; b += 32) {
      const torch::Tensor idx = perm.slice(0, b, std::min<int64_t>(b + 32, 600));
      opt.zero_grad();
      torch::Tensor loss = torch::cross_entropy_loss(net->forward(x.index_select(0, idx)),
                                                     y.index_select(0, idx));
      loss.backward();
      opt.step();
    }
    torch::NoGradGuard no_grad;
    auto params = net->parameters();
    std::vector<torch::Tensor> update;
    for (size_t i = 0; i < params.size(); ++i) update.push_back(params[i] - global[i]);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int Throughput(const std::map<std::string, std::string>& f) {
  const int clients = static_cast<int>(Flag(f, "clients", 40));
  const int workers = static_cast<int>(Flag(f, "workers", 0));
  const std::string out = TempOutput();
  // 100 IID clients of 600 examples; `clients` of them train in one round.
  ExperimentConfig config = Config(
      {{"name", "throughput"}, {"seed", 1}, {"model", "2nn"}, {"rounds", 2},
       {"fit", {{"local_epochs", 1}, {"batch_size", 32}, {"learning_rate", 0.05}, {"momentum", 0.9}}},
       {"sampling", {{"fraction_fit", clients / 100.0}, {"min_fit_clients", 1}}},
       {"data", {{"partitioner", "iid"}, {"holdout_fraction", 0}}},
       {"server", {{"output_dir", out}, {"evaluate", false}}},
       {"simulation", {{"clients", 100}, {"workers", workers}}}});
  auto train = shoal::client::LoadData(config.data, shoal::client::Split::kTrain,
                                       shoal::client::Task(config.task));
  if (!train.ok()) {
    std::fprintf(stderr, "%s\n", std::string(train.status().message()).c_str());
    return 1;
  }
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The bare loop twice: with LibTorch's default threads (what a plain
  // for-loop gets) and with one (often faster for a model this small).
  shoal::client::SetComputeThreads(threads);
  BareClientUpdates(*train, 2);  // warm-up
  const double bare_s = BareClientUpdates(*train, clients);
  shoal::client::SetComputeThreads(1);
  BareClientUpdates(*train, 2);
  const double bare1_s = BareClientUpdates(*train, clients);
  const SimulationResult sim = Simulate(config);  // one thread per worker
  // Round 1 warms up (first allocations); round 2 is measured, in real
  // time (its RoundRecord::seconds are simulated).
  const double sim_s = sim.round_real_seconds.back();
  const double sim_rate = sim.history.back().answered / sim_s;
  const double bare_rate = clients / bare_s;
  const double bare1_rate = clients / bare1_s;
  std::printf("2NN, E=1, B=32, 600 examples a client, %d clients\n", clients);
  std::printf("simulator:        %8.2f client updates/s (%d workers x 1 thread; round 2 of 2: %.2f s)\n",
              sim_rate, sim.workers, sim_s);
  std::printf("bare loop:        %8.2f client updates/s (sequential, %d intra-op threads: %.2f s)\n",
              bare_rate, threads, bare_s);
  std::printf("bare loop, 1 thr: %8.2f client updates/s (sequential, 1 thread: %.2f s)\n",
              bare1_rate, bare1_s);
  std::printf("efficiency: %.2fx against the default bare loop, %.2fx against the 1-thread one\n",
              sim_rate / bare_rate, sim_rate / bare1_rate);
  return 0;
}

int Memory(const std::map<std::string, std::string>& f) {
  const auto clients = static_cast<uint64_t>(Flag(f, "clients", 100000));
  const int per_round = static_cast<int>(Flag(f, "per-round", 1000));
  const int examples = static_cast<int>(Flag(f, "examples", 60));
  const int rounds = static_cast<int>(Flag(f, "rounds", 1));
  const std::string model = Flag(f, "model", "logreg");
  const std::string out = TempOutput();
  ExperimentConfig config = Config(
      {{"name", "memory"}, {"seed", 1}, {"model", model}, {"rounds", rounds},
       // Half the fleet is online at a time (diurnal): ask per_round of them.
       {"sampling", {{"fraction_fit", 1e-9}, {"min_fit_clients", per_round}}},
       {"data", {{"partitioner", "dirichlet"}, {"alpha", 0.5}, {"holdout_fraction", 0}}},
       {"server", {{"output_dir", out}}},
       {"simulation", {{"clients", clients}, {"examples_per_client", examples},
                       {"workers", static_cast<int>(Flag(f, "workers", 0))},
                       {"speed", {{"distribution", "lognormal"}, {"median", 50}, {"sigma", 0.5}}},
                       {"availability", {{"kind", "diurnal"}, {"online_fraction", 0.5}}}}}});
  // Idle cost: the population and the data plan on their own.
  auto labels = shoal::client::ReadIdxLabels(config.data.dir + "/train-labels-idx1-ubyte.gz");
  if (!labels.ok()) {
    std::fprintf(stderr, "%s\n", std::string(labels.status().message()).c_str());
    return 1;
  }
  long idle_kib = 0;
  size_t idle_bytes = 0;
  {
    const long before = StatusKiB("VmRSS:");
    shoal::simulation::PopulationOptions p = config.simulation.population;
    p.num_clients = clients;
    auto population = shoal::simulation::Population::Create(p);
    shoal::client::SampledPartitionOptions s;
    s.scheme = config.partition.scheme;
    s.alpha = config.partition.alpha;
    s.examples_per_client = examples;
    auto data = shoal::simulation::ClientData::Sampled(*labels, clients, s);
    if (!population.ok() || !data.ok()) {
      std::fprintf(stderr, "cannot build the population\n");
      return 1;
    }
    idle_kib = StatusKiB("VmRSS:") - before;
    idle_bytes = population->MemoryBytes() + data->MemoryBytes();
  }
  const SimulationResult sim = Simulate(config);
  double round_s = 0;
  for (double s : sim.round_real_seconds) round_s += s;
  std::printf("%llu registered clients, %d per round, model %s, %d examples a client\n",
              static_cast<unsigned long long>(clients), per_round, model.c_str(), examples);
  std::printf("idle clients: RSS +%ld KiB (%.2f bytes each); held by the simulator: %zu bytes "
              "(%.3f bytes each)\n",
              idle_kib, 1024.0 * idle_kib / clients, idle_bytes,
              static_cast<double>(idle_bytes) / clients);
  std::printf("run: %zu round(s), %.1f s a round (%zu answered in the last), %d workers\n",
              sim.history.size() - 1, round_s / (sim.history.size() - 1), sim.history.back().answered,
              sim.workers);
  std::printf("peak RSS: %.1f MiB\n", StatusKiB("VmHWM:") / 1024.0);
  return 0;
}

int Accuracy(const std::map<std::string, std::string>& f) {
  const double target = Flag(f, "target", 0.85);
  const std::string out = TempOutput();
  ExperimentConfig config = Config(
      {{"name", "time-to-accuracy"}, {"seed", 1}, {"model", Flag(f, "model", "2nn")},
       {"rounds", static_cast<int>(Flag(f, "max-rounds", 300))}, {"target_accuracy", target},
       {"sampling", {{"fraction_fit", 0.1}, {"min_fit_clients", 10}}},
       {"data", {{"partitioner", "dirichlet"}, {"alpha", 0.5}, {"holdout_fraction", 0}}},
       {"server", {{"output_dir", out}}},
       {"simulation", {{"clients", 100}, {"workers", static_cast<int>(Flag(f, "workers", 0))},
                       {"speed", {{"distribution", "lognormal"}, {"median", 50}, {"sigma", 0.5}}},
                       {"bandwidth_mbps", 10}}}});
  const SimulationResult sim = Simulate(config);
  const bool reached = !sim.stop_reason.empty();
  std::printf("2NN, 100 clients, Dirichlet alpha=0.5, 10 per round, E=1, B=32\n");
  std::printf("%s %.0f%% test accuracy after %zu rounds: %.1f s real, %.1f h simulated "
              "(lognormal speeds, median 50 examples/s, 10 Mb/s)\n",
              reached ? "reached" : "did NOT reach", 100 * target, sim.history.size() - 1,
              sim.real_seconds, sim.simulated_seconds / 3600);
  return reached ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: simulation_bench throughput|memory|accuracy [--flag value ...]\n");
    return 2;
  }
  const std::string what = argv[1];
  const auto flags = ParseFlags(argc, argv);
  if (what == "throughput") return Throughput(flags);
  if (what == "memory") return Memory(flags);
  if (what == "accuracy") return Accuracy(flags);
  std::fprintf(stderr, "unknown benchmark '%s'\n", what.c_str());
  return 2;
}
