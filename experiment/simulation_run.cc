#include "experiment/simulation_run.h"

#include <cmath>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/random.h"
#include "common/status.h"
#include "experiment/progress_reporter.h"
#include "server/model_store.h"
#include "simulation/client_data.h"
#include "simulation/population.h"

namespace shoal {
namespace {

using nlohmann::json;

// Rows of clients.csv: a million clients would make a 50 MB file and hold
// it in memory; the summary covers them all.
constexpr uint64_t kMaxClientRows = 100000;
constexpr size_t kLabelTableRows = 10;

absl::StatusOr<simulation::ClientData> MakeClientData(const ExperimentConfig& config,
                                                      const client::Dataset& train,
                                                      uint64_t clients) {
  const SimulationConfig& sim = config.simulation;
  if (sim.examples_per_client == 0) {
    client::PartitionOptions split = config.partition;
    if (clients > static_cast<uint64_t>(train.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(clients, " clients cannot split ", train.size(),
                       " training examples; set simulation.examples_per_client to let each client "
                       "draw its own"));
    }
    split.num_partitions = static_cast<int>(clients);
    return simulation::ClientData::Split(train.targets, split);
  }
  client::SampledPartitionOptions sampled;
  sampled.scheme = config.partition.scheme;
  sampled.examples_per_client = sim.examples_per_client;
  sampled.alpha = config.partition.alpha;
  sampled.classes_per_client = config.partition.classes_per_client;
  sampled.power_law_exponent = config.partition.power_law_exponent;
  // Salted: unsalted, client r's draw would share its stream with round r's
  // sampling (MixSeed(seed, r) both).
  sampled.seed = MixSeed(config.partition.seed, 0x73616d706c65);  // "sample"

  return simulation::ClientData::Sampled(train.targets, clients, sampled);
}

// SummarizeClients prints the label table of the first clients and a
// summary of all, writes clients.csv and returns the summary for
// metrics.json.
absl::StatusOr<json> SummarizeClients(const ExperimentConfig& config,
                                      const simulation::ClientData& data,
                                      const simulation::Population& population) {
  client::PartitionSummaryBuilder summary(data.PooledClassCounts());
  std::vector<std::vector<int64_t>> first;
  std::ostringstream csv;
  csv << "client,examples,speed";
  for (int k = 0; k < data.num_classes(); ++k) csv << ",class_" << k;
  csv << '\n';
  for (uint64_t c = 0; c < data.num_clients(); ++c) {
    std::vector<int64_t> counts = data.ClassCounts(c);
    summary.Add(counts);
    if (c < kMaxClientRows) {
      int64_t n = 0;
      for (int64_t x : counts) n += x;
      csv << c << ',' << n << ',' << population.Speed(c);
      for (int64_t x : counts) csv << ',' << x;
      csv << '\n';
    }
    if (first.size() < kLabelTableRows) first.push_back(std::move(counts));
  }
  const client::PartitionSummary s = summary.Finish();
  spdlog::info("label distribution of the first clients:\n{}",
               client::FormatLabelTable(first, kLabelTableRows));
  spdlog::info(
      "{} clients ({}): {:.1f} examples on average (min {}, max {}), {:.2f} classes each, "
      "mean distance from the pooled label distribution {:.3f} (0 = IID)",
      s.clients, data.disjoint() ? "a split of the training set" : "each drawing its own",
      s.mean_size, s.min_size, s.max_size, s.mean_classes, s.mean_tv_distance);
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(config.output_dir + "/clients.csv", csv.str()));
  return json{{"clients", s.clients},
              {"partitioner", client::PartitionSchemeName(config.partition.scheme)},
              {"disjoint", data.disjoint()},
              {"min_examples", s.min_size},
              {"max_examples", s.max_size},
              {"mean_examples", s.mean_size},
              {"stddev_examples", s.stddev_size},
              {"mean_classes", s.mean_classes},
              {"mean_tv_distance", s.mean_tv_distance},
              {"clients_csv_rows", std::min<uint64_t>(data.num_clients(), kMaxClientRows)}};
}

}  // namespace

struct Simulation::State {
  ExperimentConfig config;
  absl::Time start;
  uint64_t clients = 0;
  ServerSide server;
  std::unique_ptr<ModelStore> store;
  std::unique_ptr<simulation::Simulator> simulator;
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<ProgressReporter> progress;
};

Simulation::Simulation(std::unique_ptr<State> state) : state_(std::move(state)) {}
Simulation::~Simulation() = default;

absl::StatusOr<std::unique_ptr<Simulation>> Simulation::Create(ExperimentConfig config_in) {
  auto state = std::make_unique<State>();
  state->config = std::move(config_in);
  const ExperimentConfig& config = state->config;
  // The run's real duration; everything in its rounds is simulated time.
  state->start = Clock::Real()->Now();
  // One LibTorch thread here and in every worker: the workers are the
  // parallelism, and a run does not depend on how many there are.
  client::SetComputeThreads(1);
  const SimulationConfig& sim = config.simulation;
  simulation::PopulationOptions population_options = sim.population;
  population_options.num_clients =
      sim.clients > 0 ? sim.clients : static_cast<uint64_t>(config.partition.num_partitions);
  SHOAL_ASSIGN_OR_RETURN(
      simulation::Population population,
      Annotate(simulation::Population::Create(population_options), "'simulation'"));
  const uint64_t clients = population.size();
  state->clients = clients;

  SHOAL_ASSIGN_OR_RETURN(client::Dataset train,
                         client::LoadData(config.data, client::Split::kTrain,
                                          client::Task(config.task), config.num_classes));
  SHOAL_RETURN_IF_ERROR(MakeDirectories(config.output_dir));
  SHOAL_ASSIGN_OR_RETURN(simulation::ClientData data, MakeClientData(config, train, clients));
  SHOAL_ASSIGN_OR_RETURN(json partition_summary, SummarizeClients(config, data, population));

  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, ResolveModel(config, train));
  ExperimentConfig shaped = config;
  shaped.model = spec;  // the server need not read the test split for shapes
  SHOAL_ASSIGN_OR_RETURN(state->server, PrepareServerSide(shaped));
  const std::string model_name = client::ModelSpecToString(spec);
  SHOAL_ASSIGN_OR_RETURN(state->store, ModelStore::Open(config.output_dir + "/models", model_name));
  simulation::SimulationOptions sim_options = sim.options;
  sim_options.task = config.task;
  sim_options.personal = config.coordinator.personal;
  SHOAL_ASSIGN_OR_RETURN(state->simulator,
                         simulation::Simulator::Create(sim_options, std::move(population),
                                                       std::move(data), std::move(train), spec));
  CoordinatorOptions coordinator_options = config.coordinator;
  // The Coordinator runs on the simulated clock, which only the Simulator
  // moves, so no deadline passes while the machine trains. Virtual clients
  // always answer: a late one is decided in simulated time against
  // simulation.deadline_s and answers with its failure, so the round needs
  // no deadline of its own; and the Simulator's WaitForLive already moves
  // the clock on until enough clients are online, so there is nothing to
  // wait for on top of it.
  coordinator_options.clock = state->simulator->clock();
  coordinator_options.round_timeout = absl::InfiniteDuration();
  coordinator_options.wait_for_clients_timeout = absl::ZeroDuration();
  SHOAL_ASSIGN_OR_RETURN(
      state->coordinator,
      Coordinator::Create(coordinator_options, state->simulator.get(), state->server.strategy.get(),
                          state->store.get(), std::move(state->server.initial)));
  spdlog::info(
      "simulating '{}': {} rounds of {} on model '{}', {} registered clients, {} "
      "worker(s); idle clients cost {} bytes in all",
      config.name, config.coordinator.num_rounds, config.strategy, model_name, clients,
      state->simulator->workers(), state->simulator->IdleBytes());
  state->progress = std::make_unique<ProgressReporter>(config, config.output_dir);
  ProgressReporter& progress = *state->progress;
  progress.AddRunInfo("partition", std::move(partition_summary));
  simulation::Simulator* sim_ptr = state->simulator.get();
  progress.SetRoundExtras("simulation",
                          [sim_ptr](uint32_t round) { return sim_ptr->RoundMetrics(round); });
  // In any order: the Simulator learns which round comes next, and each
  // round's simulated figures are complete before any observer hears of it.
  state->coordinator->AddObserver(state->simulator.get());
  state->coordinator->AddObserver(&progress);
  return std::unique_ptr<Simulation>(new Simulation(std::move(state)));
}

absl::StatusOr<SimulationResult> Simulation::Run() {
  State& s = *state_;
  SHOAL_ASSIGN_OR_RETURN(std::vector<RoundRecord> history, s.coordinator->Run());
  SimulationResult result;
  result.history = std::move(history);
  result.simulated = s.simulator->Rounds();
  result.final_model = s.coordinator->global()->Clone();
  result.stop_reason = s.coordinator->stop_reason();
  result.clients = s.clients;
  result.workers = s.simulator->workers();
  result.simulated_seconds = s.simulator->clock()->seconds();
  result.idle_bytes = s.simulator->IdleBytes();
  result.round_real_seconds = s.progress->RoundRealSeconds();
  result.real_seconds = absl::ToDoubleSeconds(Clock::Real()->Now() - s.start);
  s.progress->AddRunInfo("simulated_seconds", result.simulated_seconds);
  s.progress->AddRunInfo("workers", result.workers);
  SHOAL_RETURN_IF_ERROR(s.progress->Write());
  return result;
}

void Simulation::Stop() { state_->coordinator->RequestStop(); }

void Simulation::AddObserver(RoundObserver* observer) {
  state_->coordinator->AddObserver(observer);
}

absl::StatusOr<SimulationResult> RunSimulation(const ExperimentConfig& config) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Simulation> simulation, Simulation::Create(config));
  return simulation->Run();
}

}  // namespace shoal
