// The simulator's engine on small generated data: ordered delivery, each
// client training on its own data only, availability, dropouts, deadlines,
// simulated time, and determinism across worker counts.
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/data/source.h"
#include "client/model.h"
#include "client/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "server/model_store.h"
#include "simulation/client_data.h"
#include "simulation/ordered_executor.h"
#include "simulation/population.h"
#include "simulation/simulated_clock.h"
#include "simulation/simulator.h"
#include "strategies/registry.h"
#include "tests/testing.h"

namespace shoal::simulation {
namespace {

using ::testing::HasSubstr;

constexpr int kClasses = 10;

// Images whose mean depends on the label, so a model can learn something.
client::Dataset Generated(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  client::Dataset d;
  d.targets = at::randint(kClasses, {n}, gen, at::TensorOptions().dtype(at::kLong));
  d.inputs = at::randn({n, 1, 28, 28}, gen) +
             d.targets.to(at::kFloat).view({n, 1, 1, 1}) / kClasses;
  return d;
}

v1::FitConfig Config() {
  v1::FitConfig c;
  c.set_local_epochs(1);
  c.set_batch_size(8);
  c.set_learning_rate(0.05);
  c.set_momentum(0.9);
  return c;
}

PopulationOptions Fleet(uint64_t clients) {
  PopulationOptions p;
  p.num_clients = clients;
  p.seed = 7;
  return p;
}

struct Scenario {
  SimulationOptions options;
  PopulationOptions population;
  client::PartitionOptions partition;
  int64_t examples = 600;
};

Scenario Default(uint64_t clients) {
  Scenario s;
  s.options.workers = 2;
  s.options.seed = 11;
  s.population = Fleet(clients);
  s.partition.scheme = client::PartitionScheme::kIid;
  s.partition.num_partitions = static_cast<int>(clients);
  s.partition.seed = 3;
  return s;
}

absl::StatusOr<std::unique_ptr<Simulator>> MakeSimulator(const Scenario& s, client::Dataset data) {
  auto population = Population::Create(s.population);
  if (!population.ok()) return population.status();
  auto plan = ClientData::Split(data.targets, s.partition);
  if (!plan.ok()) return plan.status();
  return Simulator::Create(s.options, *std::move(population), *std::move(plan), std::move(data),
                           *client::ParseModelSpec("logreg-1x28x28-10"));
}

struct RunResult {
  std::vector<RoundRecord> history;
  Parameters final_model;
  std::vector<SimulatedRound> simulated;
  std::vector<Metrics> round_metrics;
  // What an observer ahead of the simulator heard as each round ended: the
  // simulator's figures of the round and its clock.
  std::vector<Metrics> heard_metrics;
  std::vector<double> heard_clock;
  double simulated_seconds = 0;
};

// HeardFirst records what the simulator says of each round to an observer
// that hears of the round's end before the simulator does.
class HeardFirst : public RoundObserver {
 public:
  HeardFirst(Simulator* sim, RunResult* out) : sim_(sim), out_(out) {}
  void OnRoundEnd(const RoundRecord& record) override {
    if (record.round == 0) return;
    out_->heard_metrics.push_back(sim_->RoundMetrics(record.round));
    out_->heard_clock.push_back(sim_->clock()->seconds());
  }

 private:
  Simulator* const sim_;
  RunResult* const out_;
};

// How the Coordinator is wired to the simulator.
struct Wiring {
  // On the simulator's clock (as Simulation runs it), or on the real one.
  bool real_clock = false;
  // The Coordinator's round deadline on the simulator's clock.
  absl::Duration round_timeout = absl::InfiniteDuration();
};

// Run drives the real Coordinator with FedAvg over the simulator.
RunResult RunFederation(const Scenario& s, uint32_t rounds, double fraction, Wiring wiring = {}) {
  RunResult out;
  auto sim = MakeSimulator(s, Generated(s.examples, 1));
  EXPECT_TRUE(sim.ok()) << sim.status();
  if (!sim.ok()) return out;
  StrategyContext context;
  context.fit_config = Config();
  context.min_fit_clients = 1;
  auto strategy = CreateStrategy("fedavg", nlohmann::json::object(), context);
  EXPECT_TRUE(strategy.ok()) << strategy.status();
  testing::TempDir dir;
  auto store = ModelStore::Open(dir.File("models"), "logreg");
  EXPECT_TRUE(store.ok()) << store.status();
  CoordinatorOptions options;
  options.num_rounds = rounds;
  options.sampling.fraction = fraction;
  options.min_fit_clients = 1;
  options.min_available_clients = 1;
  if (wiring.real_clock) {
    options.round_timeout = absl::Minutes(10);
    options.wait_for_clients_timeout = absl::Seconds(1);
  } else {
    options.clock = (*sim)->clock();
    options.round_timeout = wiring.round_timeout;
    options.wait_for_clients_timeout = absl::ZeroDuration();
  }
  options.seed = 5;
  auto model = client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), 99);
  auto coordinator = Coordinator::Create(options, sim->get(), strategy->get(), store->get(),
                                         (*model)->GetParameters().Clone());
  EXPECT_TRUE(coordinator.ok()) << coordinator.status();
  HeardFirst heard(sim->get(), &out);
  (*coordinator)->AddObserver(&heard);
  (*coordinator)->AddObserver(sim->get());
  auto history = (*coordinator)->Run();
  EXPECT_TRUE(history.ok()) << history.status();
  if (!history.ok()) return out;
  out.history = *history;
  out.final_model = (*coordinator)->global()->Clone();
  out.simulated = (*sim)->Rounds();
  for (uint32_t r = 1; r <= rounds; ++r) out.round_metrics.push_back((*sim)->RoundMetrics(r));
  out.simulated_seconds = (*sim)->clock()->seconds();
  return out;
}

void ExpectBitIdentical(const Parameters& a, const Parameters& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a.tensor(i), b.tensor(i))) << a.name(i);
  }
}

TEST(OrderedExecutorTest, DeliversInSubmissionOrderWithBoundedBacklog) {
  constexpr int kWorkers = 4, kLookahead = 3, kJobs = 300;
  std::vector<int> delivered;
  std::atomic<int> waiting{0}, most_waiting{0};
  {
    OrderedExecutor executor(kWorkers, kLookahead, nullptr);
    std::mt19937_64 rng(1);
    for (int i = 0; i < kJobs; ++i) {
      const auto sleep_us = static_cast<int>(rng() % 500);
      executor.Submit([&, i, sleep_us](int worker) -> std::function<void()> {
        EXPECT_GE(worker, 0);
        EXPECT_LT(worker, kWorkers);
        std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
        const int now = ++waiting;
        int seen = most_waiting.load();
        while (now > seen && !most_waiting.compare_exchange_weak(seen, now)) {
        }
        return [&, i] {
          --waiting;
          delivered.push_back(i);  // deliveries never overlap
        };
      });
    }
    executor.WaitIdle();
    ASSERT_EQ(delivered.size(), static_cast<size_t>(kJobs));
  }
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(delivered[i], i);
  EXPECT_LE(most_waiting.load(), kWorkers + kLookahead);
}

// A virtual client and a real client of the same partition in a run of the
// same seed are twins: cli/client_command.cc takes partition c of the data
// and splits it with client::SplitClientData; the simulator must train on,
// and hold out, the very same examples in the same order.
TEST(SimulatorTest, VirtualClientHoldsOutWhatItsRealTwinHoldsOut) {
  Scenario s = Default(6);
  s.options.holdout_fraction = 0.25;
  client::Dataset data = Generated(s.examples, 3);
  auto sim = MakeSimulator(s, data);
  ASSERT_TRUE(sim.ok()) << sim.status();
  auto parts = client::Partition(data.targets, s.partition);
  ASSERT_TRUE(parts.ok()) << parts.status();
  for (uint64_t c = 0; c < 6; ++c) {
    const client::Dataset partition = data.Subset((*parts)[c]);
    auto [real_train, real_held] = client::SplitClientData(
        partition, s.options.holdout_fraction, client::ClientSeed(s.options.seed, c));
    auto [sim_train, sim_held] = (*sim)->ClientSplit(c);
    ASSERT_GT(real_held.size(), 0) << "client " << c;
    EXPECT_TRUE(at::equal(sim_held.inputs, real_held.inputs)) << "client " << c;
    EXPECT_TRUE(at::equal(sim_held.targets, real_held.targets)) << "client " << c;
    EXPECT_TRUE(at::equal(sim_train.inputs, real_train.inputs)) << "client " << c;
    EXPECT_TRUE(at::equal(sim_train.targets, real_train.targets)) << "client " << c;
  }
}

TEST(SimulatorTest, EachClientTrainsOnItsOwnDataOnly) {
  Scenario s = Default(12);
  s.options.holdout_fraction = 0.2;
  s.partition.scheme = client::PartitionScheme::kShards;
  s.partition.classes_per_client = 1;
  client::Dataset data = Generated(s.examples, 1);
  // Declared before the simulator: its jobs may write here until it is gone.
  absl::Mutex mu;
  std::map<uint64_t, FitRes> results;
  auto sim = MakeSimulator(s, data);
  ASSERT_TRUE(sim.ok()) << sim.status();
  auto plan = ClientData::Split(data.targets, s.partition);
  ASSERT_TRUE(plan.ok());
  auto model = client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), 99);
  auto global = std::make_shared<const Parameters>((*model)->GetParameters().Clone());
  // Without a holdout, a client trains on exactly its examples in the data
  // plan (shuffled as its real twin shuffles them).
  Scenario whole = s;
  whole.options.holdout_fraction = 0;
  auto whole_sim = MakeSimulator(whole, data);
  ASSERT_TRUE(whole_sim.ok());
  for (uint64_t c : {0, 5, 11}) {
    const client::Dataset got = (*whole_sim)->ClientSplit(c).first;
    std::vector<int64_t> expected = plan->Indices(c);
    ASSERT_EQ(got.size(), static_cast<int64_t>(expected.size())) << "client " << c;
    EXPECT_TRUE(at::equal(std::get<0>(got.targets.sort()),
                          std::get<0>(data.Subset(expected).targets.sort())))
        << "client " << c;
  }

  constexpr uint64_t kAsked[] = {0, 5, 11};
  for (uint64_t c : kAsked) {
    FitIns ins{1, 0, global, Config(), nullptr};
    (*sim)->Fit(c, ins, [&, c](absl::StatusOr<FitRes> res) {
      EXPECT_TRUE(res.ok()) << res.status();
      absl::MutexLock lock(&mu);
      if (res.ok()) results[c] = *res;
      return absl::OkStatus();
    });
  }
  {
    absl::MutexLock lock(&mu);
    auto all = [&] { return results.size() == std::size(kAsked); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(60)));
  }
  for (uint64_t c : kAsked) {
    auto [train, holdout] = (*sim)->ClientSplit(c);
    // Training and held-out examples together are exactly the client's.
    std::vector<int64_t> counts(kClasses, 0);
    for (const client::Dataset* part : {&train, &holdout}) {
      for (int64_t i = 0; i < part->size(); ++i) ++counts[part->targets[i].item<int64_t>()];
    }
    EXPECT_EQ(counts, plan->ClassCounts(c)) << "client " << c;
    EXPECT_EQ(holdout.size(), static_cast<int64_t>(0.2 * static_cast<double>(
                                                             train.size() + holdout.size())));
    // The update is what a lone device would compute on that data.
    client::TrainerOptions options;
    options.seed = (*sim)->TrainerSeed(c);
    auto trainer = client::Trainer::Create(options);
    ASSERT_TRUE(trainer.ok());
    auto own = client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"));
    auto expected = trainer->Fit(**own, *global, train, Config(), 1);
    ASSERT_TRUE(expected.ok()) << expected.status();
    EXPECT_EQ(results[c].num_examples, train.size());
    ExpectBitIdentical(results[c].update, expected->update);
  }
  // Different clients, different data, different updates.
  EXPECT_FALSE(at::equal(results[0].update.tensor(0), results[5].update.tensor(0)));
}

TEST(SimulatorTest, SamplesOnlyAvailableClients) {
  Scenario s = Default(60);
  s.population.availability.kind = AvailabilityOptions::Kind::kRandom;
  s.population.availability.probability = 0.5;
  auto sim = MakeSimulator(s, Generated(s.examples, 1));
  ASSERT_TRUE(sim.ok()) << sim.status();
  auto population = Population::Create(s.population);
  ASSERT_TRUE(population.ok());
  std::vector<std::string> expected;
  for (uint64_t c = 0; c < 60; ++c) {
    if (population->IsAvailable(c, 0, 1)) expected.push_back((*sim)->ClientId(c));
  }
  ASSERT_GT(expected.size(), 10u);
  ASSERT_LT(expected.size(), 50u);
  std::vector<std::string> sampled;
  for (const auto& proxy : (*sim)->Sample({1.0, 1}, 42)) sampled.push_back(proxy->id());
  EXPECT_EQ(sampled, expected);
  EXPECT_EQ((*sim)->LiveClientIds(), expected);
  // Find knows every registered client and nobody else.
  EXPECT_NE((*sim)->Find((*sim)->ClientId(59)), nullptr);
  EXPECT_EQ((*sim)->Find("client-60"), nullptr);
  EXPECT_EQ((*sim)->Find("client-7"), nullptr);  // IDs are padded: client-07
  EXPECT_EQ((*sim)->Find("someone"), nullptr);
}

// TrainingExamples is each client's number of training examples in `s`
// (one epoch, no holdout), recomputed from the data plan.
std::vector<int64_t> TrainingExamples(const Scenario& s, uint64_t clients) {
  client::Dataset data = Generated(s.examples, 1);
  auto plan = ClientData::Split(data.targets, s.partition);
  EXPECT_TRUE(plan.ok()) << plan.status();
  std::vector<int64_t> out(clients, 0);
  if (!plan.ok()) return out;
  for (uint64_t c = 0; c < clients; ++c) {
    for (int64_t x : plan->ClassCounts(c)) out[c] += x;
  }
  return out;
}

TEST(SimulatorTest, RoundTimeIsTheSlowestClientWhenNobodyFails) {
  Scenario s = Default(20);
  s.population.speed.kind = Distribution::Kind::kUniform;
  s.population.speed.min = 5;
  s.population.speed.max = 50;
  const RunResult run = RunFederation(s, 2, 1.0);
  ASSERT_EQ(run.simulated.size(), 2u);
  // Each client takes its examples / its speed (one epoch, no transfers);
  // recomputed from the population and the data plan.
  auto population = Population::Create(s.population);
  ASSERT_TRUE(population.ok());
  const std::vector<int64_t> examples = TrainingExamples(s, 20);
  double slowest = 0;
  for (uint64_t c = 0; c < 20; ++c) {
    slowest = std::max(slowest, static_cast<double>(examples[c]) / population->Speed(c));
  }
  double clock = 0;
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_TRUE(run.history[r + 1].failures.empty());
    EXPECT_EQ(run.history[r + 1].answered, 20u);
    EXPECT_EQ(run.simulated[r].trained, 20);
    EXPECT_DOUBLE_EQ(run.simulated[r].duration_s, slowest);
    EXPECT_DOUBLE_EQ(run.simulated[r].start_s, clock);
    clock += run.simulated[r].duration_s;
  }
}

// Issue 17.5: each device's own link speeds (its profile: here lognormal
// downlinks and uniform uplinks, overriding bandwidth_mbps) set its
// transfer time, so the round lasts as long as its slowest link.
TEST(SimulatorTest, EachClientsOwnLinksSetItsTransferTime) {
  Scenario s = Default(20);
  s.population.speed = Distribution::Constant(1e9);  // compute takes nanoseconds
  s.population.downlink_mbps = Distribution::LogNormal(20, 1.0);
  s.population.uplink_mbps = Distribution::Uniform(0.5, 5);
  s.options.bandwidth_mbps = 1000;  // every client has links of its own
  const RunResult run = RunFederation(s, 2, 1.0);
  ASSERT_EQ(run.simulated.size(), 2u);
  auto population = Population::Create(s.population);
  ASSERT_TRUE(population.ok());
  const std::vector<int64_t> examples = TrainingExamples(s, 20);
  const double bits = static_cast<double>(run.final_model.ByteSize()) * 8;
  double slowest = 0, fastest = 1e300, sum = 0;
  for (uint64_t c = 0; c < 20; ++c) {
    const double transfer = bits / (population->DownlinkMbps(c) * 1e6) +
                            bits / (population->UplinkMbps(c) * 1e6);
    EXPECT_GE(population->UplinkMbps(c), 0.5);
    EXPECT_LE(population->UplinkMbps(c), 5);
    slowest = std::max(slowest, transfer + static_cast<double>(examples[c]) / 1e9);
    fastest = std::min(fastest, transfer);
    sum += transfer;
  }
  EXPECT_GT(slowest / fastest, 2);  // the links differ
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_EQ(run.history[r + 1].answered, 20u);
    EXPECT_NEAR(run.simulated[r].duration_s, slowest, 1e-9 * slowest) << "round " << r + 1;
    EXPECT_NEAR(MetricAsDouble(run.round_metrics[r].at("sim_transfer_s")), sum / 20,
                1e-9 * sum)
        << "round " << r + 1;
  }
}

TEST(SimulatorTest, DropoutsAndLateClientsAreFailuresAndCountedOnce) {
  Scenario s = Default(40);
  s.population.speed.kind = Distribution::Kind::kUniform;
  s.population.speed.min = 1;
  s.population.speed.max = 40;
  s.options.dropout_fraction = 0.25;
  s.options.deadline_s = 10;  // 15 examples at < 1.5 examples/s miss it
  s.options.bandwidth_mbps = 100;
  const RunResult run = RunFederation(s, 3, 1.0);
  ASSERT_EQ(run.simulated.size(), 3u);
  int64_t late = 0, dropped = 0;
  for (size_t r = 0; r < 3; ++r) {
    const RoundRecord& record = run.history[r + 1];
    const SimulatedRound& sim = run.simulated[r];
    EXPECT_EQ(record.sampled, 40u);
    EXPECT_EQ(static_cast<int64_t>(record.answered), sim.trained);
    EXPECT_EQ(static_cast<int64_t>(record.failures.size()), sim.late + sim.dropped + sim.offline);
    EXPECT_EQ(sim.trained + sim.late + sim.dropped + sim.offline + sim.errors, 40);
    EXPECT_EQ(sim.errors, 0);
    int64_t late_msgs = 0, dropped_msgs = 0;
    for (const ClientFailure& f : record.failures) {
      const std::string msg(f.status.message());
      if (msg.find("deadline") != std::string::npos) {
        ++late_msgs;
        EXPECT_EQ(f.status.code(), absl::StatusCode::kDeadlineExceeded);
      } else {
        EXPECT_THAT(msg, HasSubstr("dropped out"));
        ++dropped_msgs;
      }
    }
    EXPECT_EQ(late_msgs, sim.late);
    EXPECT_EQ(dropped_msgs, sim.dropped);
    // A silent failure keeps the server waiting until the deadline.
    if (!record.failures.empty()) {
      EXPECT_DOUBLE_EQ(sim.duration_s, 10);
    }
    EXPECT_EQ(MetricAsDouble(run.round_metrics[r].at("sim_round_s")), sim.duration_s);
    late += sim.late;
    dropped += sim.dropped;
  }
  // About a quarter drop out: 30 expected of 120, seeded.
  EXPECT_GT(dropped, 15);
  EXPECT_LT(dropped, 45);
  EXPECT_GT(late, 0);
}

// WriteTrace writes a trace file whose row i is "i," + rows[i] (speed and
// windows) and returns its path.
std::string WriteTrace(const testing::TempDir& dir, const std::vector<std::string>& rows) {
  std::string trace = "client,speed,windows\n";
  for (size_t c = 0; c < rows.size(); ++c) trace += std::to_string(c) + "," + rows[c] + "\n";
  const std::string path = dir.File("trace.csv");
  std::FILE* f = std::fopen(path.c_str(), "w");
  EXPECT_NE(f, nullptr);
  if (f != nullptr) {
    std::fputs(trace.c_str(), f);
    std::fclose(f);
  }
  return path;
}

TEST(SimulatorTest, ClientsWhoseWindowClosesMidRoundFailAsOffline) {
  // A trace: every client trains at 1 example/s on 20 examples (20 s).
  // Even clients are online for 10 s only, odd ones for an hour.
  testing::TempDir dir;
  std::vector<std::string> rows;
  for (int c = 0; c < 30; ++c) rows.push_back(c % 2 == 0 ? "1,0-10" : "1,0-3600");
  Scenario s = Default(30);
  s.population.trace_path = WriteTrace(dir, rows);
  const RunResult run = RunFederation(s, 1, 1.0);
  ASSERT_EQ(run.simulated.size(), 1u);
  const RoundRecord& record = run.history[1];
  EXPECT_EQ(run.simulated[0].offline, 15);
  EXPECT_EQ(run.simulated[0].trained, 15);
  EXPECT_EQ(record.answered, 15u);
  ASSERT_EQ(record.failures.size(), 15u);
  for (const ClientFailure& f : record.failures) {
    EXPECT_THAT(std::string(f.status.message()), HasSubstr("went offline 10.0 s into the round"));
    EXPECT_EQ((f.client_id.back() - '0') % 2, 0) << f.client_id;
  }
  // No deadline: the round ends with its slowest client, 20 s in.
  EXPECT_DOUBLE_EQ(run.simulated[0].duration_s, 20);
}

TEST(SimulatorTest, ClockWaitsForClientsToComeOnline) {
  testing::TempDir dir;
  Scenario s = Default(10);
  s.population.trace_path = WriteTrace(dir, std::vector<std::string>(10, "10,500-100000"));
  const RunResult run = RunFederation(s, 2, 1.0);
  ASSERT_EQ(run.simulated.size(), 2u);
  // Nobody is online until 500 s; the clock moves on in 60 s steps.
  EXPECT_DOUBLE_EQ(run.simulated[0].start_s, 540);
  EXPECT_EQ(run.simulated[0].trained, 10);
  EXPECT_DOUBLE_EQ(run.simulated[1].start_s, 540 + run.simulated[0].duration_s);
}

TEST(SimulatorTest, EvaluatesOnTheHeldOutExamplesOnly) {
  Scenario s = Default(10);
  s.options.holdout_fraction = 0.25;
  client::Dataset data = Generated(s.examples, 1);
  absl::Mutex mu;
  std::vector<absl::StatusOr<EvaluateRes>> results;
  auto sim = MakeSimulator(s, data);
  ASSERT_TRUE(sim.ok());
  Scenario none = Default(10);
  auto no_holdout = MakeSimulator(none, data);
  ASSERT_TRUE(no_holdout.ok());
  auto model = client::CreateModel(*client::ParseModelSpec("logreg-1x28x28-10"), 99);
  auto global = std::make_shared<const Parameters>((*model)->GetParameters().Clone());
  EvaluateIns ins{1, 0, global, {}};
  auto record = [&](absl::StatusOr<EvaluateRes> res) {
    absl::MutexLock lock(&mu);
    results.push_back(std::move(res));
    return absl::OkStatus();
  };
  (*sim)->Evaluate(3, ins, record);
  (*no_holdout)->Evaluate(3, ins, record);
  {
    absl::MutexLock lock(&mu);
    auto both = [&] { return results.size() == 2; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&both), absl::Seconds(60)));
  }
  int ok = 0;
  for (const auto& res : results) {
    if (res.ok()) {
      ++ok;
      EXPECT_EQ(res->num_examples, (*sim)->ClientSplit(3).second.size());
      EXPECT_EQ(res->num_examples, 15);  // a quarter of 60
      EXPECT_TRUE(res->metrics.count("accuracy"));
    } else {
      EXPECT_EQ(res.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(std::string(res.status().message()), HasSubstr("holdout_fraction"));
    }
  }
  EXPECT_EQ(ok, 1);
}

TEST(SimulatorTest, SameWeightsAndMetricsWithOneOrFourWorkers) {
  Scenario one = Default(30);
  one.options.workers = 1;
  one.options.dropout_fraction = 0.3;
  Scenario four = one;
  four.options.workers = 4;
  const RunResult a = RunFederation(one, 3, 0.5);
  const RunResult b = RunFederation(four, 3, 0.5);
  ASSERT_EQ(a.history.size(), 4u);
  ASSERT_EQ(b.history.size(), 4u);
  ExpectBitIdentical(a.final_model, b.final_model);
  for (size_t r = 1; r < a.history.size(); ++r) {
    EXPECT_EQ(a.history[r].answered, b.history[r].answered);
    EXPECT_EQ(a.history[r].train_loss, b.history[r].train_loss);  // bitwise
    EXPECT_EQ(a.history[r].train_examples, b.history[r].train_examples);
    // Results, failures included, reach the round in one order.
    std::vector<std::string> failed_a, failed_b;
    for (const ClientFailure& f : a.history[r].failures) failed_a.push_back(f.client_id);
    for (const ClientFailure& f : b.history[r].failures) failed_b.push_back(f.client_id);
    EXPECT_EQ(failed_a, failed_b) << "round " << r;
    EXPECT_FALSE(failed_a.empty()) << "round " << r;
  }
  EXPECT_EQ(a.simulated.back().start_s, b.simulated.back().start_s);
}

TEST(SimulatedClockTest, MovesOnlyForwardAndWakesWhoWaitsForTheTimeItReaches) {
  SimulatedClock clock;
  EXPECT_EQ(clock.seconds(), 0);
  EXPECT_EQ(clock.Now(), absl::UnixEpoch());
  clock.AdvanceTo(12.25);
  clock.AdvanceTo(3);  // never back
  EXPECT_EQ(clock.seconds(), 12.25);
  EXPECT_EQ(clock.Now(), absl::UnixEpoch() + absl::Seconds(12.25));
  // A waiter wakes when the clock reaches its deadline, and returns only
  // then (were the clock never to reach it, the test would not end).
  absl::Mutex mu;
  const bool never = false;
  absl::Time woke;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(clock.AwaitWithDeadline(&mu, absl::Condition(&never),
                                         absl::UnixEpoch() + absl::Seconds(100)));
    woke = clock.Now();
  });
  for (double t : {20.0, 99.5, 100.0}) clock.AdvanceTo(t);
  waiter.join();
  EXPECT_EQ(woke, absl::UnixEpoch() + absl::Seconds(100));
}

// The Coordinator runs on the simulator's clock: an observer that hears of
// a round's end before the simulator does finds the round's figures
// complete and the clock at the round's end, and the round lasted its
// simulated time on the Coordinator's clock.
TEST(SimulatorTest, RoundIsCompleteOnTheClockBeforeAnyObserverHearsOfIt) {
  Scenario s = Default(30);
  s.population.speed.kind = Distribution::Kind::kUniform;
  s.population.speed.min = 1;
  s.population.speed.max = 40;
  s.options.dropout_fraction = 0.2;
  s.options.deadline_s = 12;
  const RunResult run = RunFederation(s, 3, 0.5);
  ASSERT_EQ(run.simulated.size(), 3u);
  ASSERT_EQ(run.heard_metrics.size(), 3u);
  for (size_t r = 0; r < 3; ++r) {
    const SimulatedRound& sim = run.simulated[r];
    EXPECT_EQ(run.heard_metrics[r], run.round_metrics[r]) << "round " << r + 1;
    EXPECT_EQ(run.heard_clock[r], sim.start_s + sim.duration_s) << "round " << r + 1;
    EXPECT_NEAR(run.history[r + 1].seconds, sim.duration_s, 1e-6) << "round " << r + 1;
    EXPECT_GT(sim.duration_s, 0);
  }
  EXPECT_EQ(run.simulated_seconds, run.heard_clock.back());
}

// What the fleet does is the simulator's to decide, whichever clock the
// Coordinator waits on: the same run on the real clock (how the Coordinator
// ran before it took the simulated one) and on the simulated one.
TEST(SimulatorTest, SameRunOnTheRealClockAndTheSimulatedOne) {
  Scenario s = Default(40);
  s.population.speed.kind = Distribution::Kind::kLogNormal;
  s.population.speed.median = 20;
  s.population.speed.sigma = 0.7;
  s.population.availability.kind = AvailabilityOptions::Kind::kDiurnal;
  s.population.availability.period_s = 600;
  s.population.availability.online_fraction = 0.4;
  s.options.dropout_fraction = 0.2;
  s.options.deadline_s = 3;
  s.options.bandwidth_mbps = 1;
  Wiring real;
  real.real_clock = true;
  const RunResult a = RunFederation(s, 4, 0.5, real);
  const RunResult b = RunFederation(s, 4, 0.5);
  ASSERT_EQ(a.history.size(), 5u);
  ASSERT_EQ(b.history.size(), 5u);
  ExpectBitIdentical(a.final_model, b.final_model);
  ASSERT_EQ(a.simulated.size(), b.simulated.size());
  int64_t failed = 0;
  for (size_t r = 0; r < a.simulated.size(); ++r) {
    EXPECT_EQ(a.simulated[r].start_s, b.simulated[r].start_s) << "round " << r + 1;
    EXPECT_EQ(a.simulated[r].duration_s, b.simulated[r].duration_s) << "round " << r + 1;
    EXPECT_EQ(a.round_metrics[r], b.round_metrics[r]) << "round " << r + 1;
    const RoundRecord& ra = a.history[r + 1];
    const RoundRecord& rb = b.history[r + 1];
    EXPECT_EQ(ra.sampled, rb.sampled);
    EXPECT_EQ(ra.train_loss, rb.train_loss);  // bitwise
    ASSERT_EQ(ra.failures.size(), rb.failures.size());
    for (size_t i = 0; i < ra.failures.size(); ++i) {
      EXPECT_EQ(ra.failures[i].client_id, rb.failures[i].client_id);
      EXPECT_EQ(ra.failures[i].status, rb.failures[i].status);
    }
    failed += static_cast<int64_t>(ra.failures.size());
  }
  EXPECT_GT(failed, 0);
  EXPECT_EQ(a.simulated_seconds, b.simulated_seconds);
  EXPECT_GT(a.simulated.back().start_s, 0);
}

// The Coordinator's deadline is in simulated time: however long the machine
// takes to train a round (here far more than a millisecond of real time), a
// round that is quick in simulated time never misses it.
TEST(SimulatorTest, SlowTrainingNeverPassesASimulatedDeadline) {
  Scenario s = Default(20);
  s.population.speed = Distribution::Constant(1e9);  // 30 examples in 30 ns
  s.options.workers = 1;
  Wiring wiring;
  wiring.round_timeout = absl::Milliseconds(1);
  const RunResult run = RunFederation(s, 2, 1.0, wiring);
  ASSERT_EQ(run.history.size(), 3u);
  for (size_t r = 1; r < 3; ++r) {
    EXPECT_EQ(run.history[r].answered, 20u) << "round " << r;
    EXPECT_TRUE(run.history[r].failures.empty()) << "round " << r;
    EXPECT_LT(run.history[r].seconds, 1e-3) << "round " << r;
  }
}

}  // namespace
}  // namespace shoal::simulation
