// Simulator: a population of virtual clients, in one process, that the real
// Coordinator runs rounds with. It is a ClientPool: each round it samples the
// clients that are available at the simulated time, and its proxies train
// them with the real client library (LocalClient, Trainer) on a pool of
// worker threads, each with one model that the virtual clients take turns
// on. A virtual client is a few bytes: its data, speed and availability are
// recomputed from its index whenever it is asked; nothing of it stays in
// memory between rounds (except the state of its client algorithms, such
// as SCAFFOLD's control variate, which a real device would keep too).
//
// Simulated time: a sampled client that trains takes
//   download + epochs * examples / speed + upload
// simulated seconds (transfers at the client's own link speeds, from its
// profile or trace (Population::DownlinkMbps, UplinkMbps), else at
// bandwidth_mbps: the model in full down, the update up as the round
// compresses it, CompressedUploadBytes). Each
// result's upload_bytes is what its upload would carry. It fails when it would
// finish after the round's simulated deadline (it is then not trained at
// all: its result would be refused anyway), when its availability window
// closes first, or, with probability dropout_fraction, by dropping out
// partway; whichever happens first counts. The round lasts until its last
// result, or until the deadline when any client failed silently (a server
// cannot tell a dropped client from a slow one); with no deadline, a failed
// client's part ends when it fails. Models with random operations (e.g.
// dropout in a TorchScript model) draw from LibTorch's shared generator and
// are not bit-identical across worker counts; the built-in models are.
// Results reach the round in the order the clients were sampled, whatever
// the number of workers, so a run is bit-identical for a seed.
//
// The simulated time is a Clock (clock()) for the Coordinator to run on:
// each round starts when it is sampled, and as each result reaches the
// round the clock moves on to when the server would hear of that client
// (its finish, its failure, or for a silent failure the deadline), so it
// reads the round's end once the round has heard from every client.
#ifndef SHOAL_SIMULATION_SIMULATOR_H_
#define SHOAL_SIMULATION_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client_algorithm.h"
#include "client/data/dataset.h"
#include "client/model.h"
#include "client/task.h"
#include "common/parameters.h"
#include "common/types.h"
#include "server/client_pool.h"
#include "server/coordinator.h"
#include "simulation/client_data.h"
#include "simulation/population.h"
#include "simulation/simulated_clock.h"

namespace shoal::simulation {

// SimulationOptions. The defaults simulate a fleet that is always there,
// never drops out, and whose transfers and deadlines do not matter.
struct SimulationOptions {
  // Worker threads training clients in parallel, each with one LibTorch
  // intra-op thread; 0 = one per core.
  int workers = 0;
  // Chance that a sampled client drops out partway through its round, in
  // [0, 1).
  double dropout_fraction = 0;
  // Simulated link speed for the model download and the (compressed)
  // update upload, in megabits per second, for clients whose profile gives
  // none (PopulationOptions::downlink_mbps, uplink_mbps, or a trace's link
  // columns); 0 = their transfers take no simulated time.
  double bandwidth_mbps = 0;
  // Simulated round deadline in seconds; 0 = none.
  double deadline_s = 0;
  // Personal tensors (fit.personal): each virtual client trains and keeps
  // its own, with its client algorithms' state (LocalClient::set_personal).
  std::vector<std::string> personal;
  // Fraction of each client's examples kept aside for federated evaluation,
  // in [0, 0.9].
  double holdout_fraction = 0;
  // Seeds shuffling, dropouts and the holdout split. A virtual client's
  // holdout split and shuffle are those of a real client of partition c in
  // a run of this seed (client::ClientSeed, client::SplitHoldout).
  uint64_t seed = 0;
  // What the clients' model learns (loss and metrics).
  client::TaskOptions task;
  // Log in-round progress at most this often.
  absl::Duration progress_interval = absl::Seconds(5);

  absl::Status Validate() const;
};

// SimulatedRound: what the fleet did in one round, in simulated time.
struct SimulatedRound {
  uint32_t round = 0;
  double start_s = 0;     // simulated time at the start of the round
  double duration_s = 0;  // how long the fleet took
  int64_t trained = 0;    // clients that trained and answered with an update
  int64_t late = 0;       // would have finished after the deadline
  int64_t dropped = 0;    // dropped out partway
  int64_t offline = 0;    // their availability window closed first
  int64_t errors = 0;     // trained but failed (e.g. no training examples)
  // Simulated seconds the clients that finished spent on their download and
  // upload, summed, and how many they were.
  double transfer_s = 0;
  int64_t finishing = 0;
};

// Simulator is thread-safe. Create it, pass it to a Coordinator as its
// ClientPool, with clock() as the Coordinator's clock, and add it as one of
// the Coordinator's RoundObservers (in any place: it learns there which round
// comes next). Give that Coordinator an infinite round_timeout and a zero
// wait_for_clients_timeout (Simulation does): virtual clients always answer,
// their deadline is SimulationOptions::deadline_s, and WaitForLive does the
// waiting for clients itself.
//
// Example:
//   options.clock = simulator->clock();
//   options.round_timeout = absl::InfiniteDuration();
//   options.wait_for_clients_timeout = absl::ZeroDuration();
//   SHOAL_ASSIGN_OR_RETURN(auto coordinator, Coordinator::Create(
//       options, simulator.get(), strategy, store, std::move(initial)));
//   coordinator->AddObserver(simulator.get());
class Simulator : public ClientPool, public RoundObserver {
 public:
  // Create checks that `population` and `data` have the same number of
  // clients and builds one `model` per worker (errors name the model file
  // or the bad option). `train` is the dataset `data` indexes.
  static absl::StatusOr<std::unique_ptr<Simulator>> Create(
      SimulationOptions options, Population population, ClientData data,
      client::Dataset train, const client::ModelSpec& model);
  ~Simulator() override;

  // ClientPool. A client is live when its availability allows at the
  // current simulated time. WaitForLive advances the simulated clock (in
  // steps of a simulated minute, up to a simulated week) until enough are;
  // when they never are, it returns false and leaves the clock where it
  // was. It does not use `timeout`. Sample opens a round: its simulated
  // start is the clock when it is sampled.
  bool WaitForLive(size_t n, absl::Duration timeout) override;
  std::vector<std::string> LiveClientIds() const override;
  std::vector<std::shared_ptr<ClientProxy>> Sample(const SamplingOptions& options,
                                                   uint64_t seed) override;
  std::shared_ptr<ClientProxy> Find(const std::string& id) const override;
  void ShutdownAll(const std::string& reason, int64_t final_version) override {}

  // RoundObserver: the next round is record.round + 1 (availability may
  // depend on the round). The round's simulated figures are complete by
  // then, before any observer hears of it.
  void OnRoundEnd(const RoundRecord& record) override;

  // ClientId names virtual client `index`: "client-" and the index, padded
  // so that IDs sort like indices.
  std::string ClientId(uint64_t index) const;
  uint64_t num_clients() const { return population_.size(); }
  int workers() const;
  // clock is the simulated time (clock()->seconds(): since the run
  // started). Owned by the Simulator; the Coordinator runs on it.
  SimulatedClock* clock() { return &clock_; }
  // Rounds returns the simulated record of every round begun (sampled), in
  // order: once a round has heard from all its clients, what they did.
  std::vector<SimulatedRound> Rounds() const;
  // RoundMetrics returns a finished round's simulated figures as metrics
  // ("sim_round_s", "sim_clock_s", "late", "dropped", "offline", "errors").
  Metrics RoundMetrics(uint32_t round) const;
  // IdleBytes is what the registered clients cost while idle: the
  // population's and the data plan's memory (model-sized state excluded).
  size_t IdleBytes() const;

  // ClientSplit returns virtual client `client`'s training and held-out
  // examples: what it trains and evaluates on, and nothing else.
  std::pair<client::Dataset, client::Dataset> ClientSplit(uint64_t client) const;
  // TrainerSeed is the seed of the client's batch shuffling.
  uint64_t TrainerSeed(uint64_t client) const;

  // Fit and Evaluate serve the proxies (see the file comment). `finish`, if
  // set, runs on the worker right after training (a secure round's masking,
  // which costs as much as a short training and must not be serialized).
  using FitFinisher = std::function<absl::StatusOr<FitRes>(FitRes)>;
  void Fit(uint64_t client, const FitIns& ins, FitResultHandler handler,
           FitFinisher finish = nullptr);
  void Evaluate(uint64_t client, const EvaluateIns& ins, EvaluateResultHandler handler);

 private:
  struct Worker;
  Simulator(SimulationOptions options, Population population, ClientData data,
            client::Dataset train);
  // Available lists the clients that may be sampled at simulated time `t` in
  // round `round` (32-bit indices: populations are capped at 2^32 clients,
  // and this list is the largest thing a round builds).
  std::vector<uint32_t> Available(double t, uint32_t round) const;
  // OpenRound returns `round`'s record, begun at the current simulated
  // time if it is new.
  SimulatedRound& OpenRound(uint32_t round) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  enum class Outcome { kTrained, kSimulatedFailure, kError };
  // CountDone counts a client's answer in `round`, just before the round
  // hears of it, and moves the clock on to `heard_at`, the simulated time at
  // which a server would hear of it.
  void CountDone(uint32_t round, Outcome outcome, double heard_at);
  absl::StatusOr<FitRes> TrainClient(int worker, uint64_t client, const FitIns& ins);
  absl::StatusOr<EvaluateRes> EvaluateClient(int worker, uint64_t client,
                                             const EvaluateIns& ins);

  const SimulationOptions options_;
  const Population population_;
  const ClientData data_;
  const client::Dataset train_;
  const int id_width_;
  std::vector<std::unique_ptr<Worker>> workers_;

  // Moved by WaitForLive and CountDone only. Read, not moved, under mu_.
  SimulatedClock clock_;
  mutable absl::Mutex mu_;
  uint32_t round_ ABSL_GUARDED_BY(mu_) = 1;  // the round being run or next
  // Every round begun; the last one's figures grow as its clients answer.
  std::map<uint32_t, SimulatedRound> rounds_ ABSL_GUARDED_BY(mu_);
  // The state of each client's client algorithms (SCAFFOLD's control
  // variate), by client; only clients that ran an algorithm that keeps one.
  std::map<uint64_t, client::ClientAlgorithmState> algorithm_states_ ABSL_GUARDED_BY(mu_);
  // In-round progress of the newest round, in real time (how long the
  // machine takes, not the fleet).
  Clock* const real_clock_ = Clock::Real();
  size_t asked_ ABSL_GUARDED_BY(mu_) = 0;
  size_t done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time round_real_start_ ABSL_GUARDED_BY(mu_);
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);

  // Declared last: destroyed first, so no job outlives what it uses.
  std::unique_ptr<class OrderedExecutor> executor_;
};

}  // namespace shoal::simulation

#endif  // SHOAL_SIMULATION_SIMULATOR_H_
