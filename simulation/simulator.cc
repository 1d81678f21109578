#include "simulation/simulator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/data/source.h"
#include "client/local_client.h"
#include "client/trainer.h"
#include "common/logging.h"
#include "common/random.h"
#include "common/update_compression.h"
#include "common/status.h"
#include "secagg/participant.h"
#include "simulation/ordered_executor.h"

namespace shoal::simulation {
namespace {

constexpr char kIdPrefix[] = "client-";
// Salts that keep the per-client streams apart.
constexpr uint64_t kDropoutSalt = 0x64726f70;  // "drop"
// WaitForLive advances the simulated clock in these steps, up to a week.
constexpr double kWaitStepS = 60;
constexpr double kMaxWaitS = 7 * 24 * 3600;

// VirtualClientProxy is how the Coordinator reaches one virtual client: a
// name and an index into the Simulator, created when the client is sampled
// and dropped after the round. In a securely aggregated round it also holds
// the client's side of the protocol: stage messages are answered at once
// (the crypto costs no simulated time), and the trained update is masked
// by the worker that trained it.
class VirtualClientProxy : public ClientProxy {
 public:
  VirtualClientProxy(Simulator* simulator, uint64_t index, std::string id)
      : simulator_(simulator), index_(index), id_(std::move(id)) {}

  const std::string& id() const override { return id_; }
  // Virtual clients answer by their own simulated time (a late one fails
  // against SimulationOptions::deadline_s), not by the Coordinator's
  // deadline.
  void Fit(const FitIns& ins, absl::Time deadline, FitResultHandler handler) override {
    Simulator::FitFinisher mask;
    if (ins.secagg != nullptr) {
      mask = [participant = secagg_, shares = ins.secagg](FitRes trained) {
        return participant->MaskedResult(*shares, trained);
      };
    }
    simulator_->Fit(index_, ins, std::move(handler), std::move(mask));
  }
  void SecAgg(const v1::SecAggServerMessage& message, uint32_t round, absl::Time deadline,
              SecAggResultHandler handler) override {
    handler(secagg_->Handle(message)).IgnoreError();  // a refusal is the round's to report
  }
  void Evaluate(const EvaluateIns& ins, absl::Time deadline,
                EvaluateResultHandler handler) override {
    simulator_->Evaluate(index_, ins, std::move(handler));
  }
  // Every task is answered (a simulated failure is an answer), so there is
  // never one to withdraw.
  void Cancel() override {}
  void Shutdown(const std::string& reason, int64_t final_version) override {}

 private:
  Simulator* const simulator_;
  const uint64_t index_;
  const std::string id_;
  const std::shared_ptr<secagg::SecAggParticipant> secagg_ =
      std::make_shared<secagg::SecAggParticipant>();
};

int Digits(uint64_t n) {
  int d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

}  // namespace

// Worker: one model, driven by a LocalClient that each virtual client takes
// in turn. Used by one worker thread only.
struct Simulator::Worker {
  std::unique_ptr<client::LocalClient> client;
};

absl::Status SimulationOptions::Validate() const {
  if (workers < 0 || workers > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers must be in [0, 1024] (0 = one per core), got ", workers));
  }
  if (!(dropout_fraction >= 0 && dropout_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout_fraction must be in [0, 1), got ", dropout_fraction));
  }
  if (!(bandwidth_mbps >= 0) || !std::isfinite(bandwidth_mbps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bandwidth_mbps must be >= 0 (0 = free transfers), got ", bandwidth_mbps));
  }
  if (!(deadline_s >= 0) || !std::isfinite(deadline_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("deadline_s must be >= 0 (0 = none), got ", deadline_s));
  }
  if (!(holdout_fraction >= 0 && holdout_fraction <= 0.9)) {
    return absl::InvalidArgumentError(
        absl::StrCat("holdout_fraction must be in [0, 0.9], got ", holdout_fraction));
  }
  return absl::OkStatus();
}

Simulator::Simulator(SimulationOptions options, Population population, ClientData data,
                     client::Dataset train)
    : options_(std::move(options)), population_(std::move(population)),
      data_(std::move(data)), train_(std::move(train)),
      id_width_(Digits(population_.size() == 0 ? 0 : population_.size() - 1)) {}

Simulator::~Simulator() { executor_.reset(); }

absl::StatusOr<std::unique_ptr<Simulator>> Simulator::Create(
    SimulationOptions options, Population population, ClientData data,
    client::Dataset train, const client::ModelSpec& model) {
  SHOAL_RETURN_IF_ERROR(options.Validate());
  if (population.size() != data.num_clients()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the population has ", population.size(), " clients but the data is split among ",
        data.num_clients()));
  }
  if (population.size() == 0) return absl::InvalidArgumentError("the population is empty");
  if (population.size() > (uint64_t{1} << 32)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a population holds at most 2^32 clients, got ", population.size()));
  }
  int workers = options.workers;
  if (workers == 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto sim = std::unique_ptr<Simulator>(new Simulator(
      std::move(options), std::move(population), std::move(data), std::move(train)));
  for (int w = 0; w < workers; ++w) {
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> m, client::CreateModel(model));
    SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer, client::Trainer::Create({}));
    auto worker = std::make_unique<Worker>();
    worker->client = std::make_unique<client::LocalClient>(
        std::move(m), std::move(trainer), client::Dataset{}, client::Dataset{});
    worker->client->set_personal(sim->options_.personal);
    sim->workers_.push_back(std::move(worker));
  }
  // One LibTorch thread per worker: the workers are the parallelism.
  sim->executor_ = std::make_unique<OrderedExecutor>(
      workers, workers, [](int) { client::SetComputeThreads(1); });
  return sim;
}

int Simulator::workers() const { return static_cast<int>(workers_.size()); }

std::string Simulator::ClientId(uint64_t index) const {
  return absl::StrFormat("%s%0*d", kIdPrefix, id_width_, index);
}

std::vector<uint32_t> Simulator::Available(double t, uint32_t round) const {
  std::vector<uint32_t> out;
  for (uint64_t c = 0; c < population_.size(); ++c) {
    if (population_.IsAvailable(c, t, round)) out.push_back(static_cast<uint32_t>(c));
  }
  return out;
}

bool Simulator::WaitForLive(size_t n, absl::Duration timeout) {
  // Called by the Coordinator between rounds, when no result is on its way:
  // nothing else moves the clock meanwhile.
  const double now = clock_.seconds();
  uint32_t round;
  {
    absl::MutexLock lock(&mu_);
    round = round_;
  }
  double t = now;
  // Only a clock-driven availability can bring more clients by waiting.
  const double give_up = population_.TimeDependent() ? t + kMaxWaitS : t;
  for (; t <= give_up; t += kWaitStepS) {
    size_t live = 0;
    for (uint64_t c = 0; c < population_.size() && live < n; ++c) {
      live += population_.IsAvailable(c, t, round) ? 1 : 0;
    }
    if (live >= n) {
      if (t > now) {
        spdlog::info("simulated clock: {:.0f} s idle until {} clients are available", t - now, n);
        clock_.AdvanceTo(t);
      }
      return true;
    }
  }
  return false;
}

std::vector<std::string> Simulator::LiveClientIds() const {
  uint32_t round;
  {
    absl::MutexLock lock(&mu_);
    round = round_;
  }
  std::vector<std::string> ids;
  for (uint32_t c : Available(clock_.seconds(), round)) ids.push_back(ClientId(c));
  return ids;
}

std::vector<std::shared_ptr<ClientProxy>> Simulator::Sample(const SamplingOptions& options,
                                                            uint64_t seed) {
  double t;
  uint32_t round;
  {
    absl::MutexLock lock(&mu_);
    round = round_;
    t = OpenRound(round).start_s;
  }
  std::vector<uint32_t> live = Available(t, round);
  const size_t want = SampleSize(options, live.size());
  Rng rng(seed);
  PartialShuffle(live, want, rng);
  live.resize(want);
  std::sort(live.begin(), live.end());
  std::vector<std::shared_ptr<ClientProxy>> sampled;
  sampled.reserve(live.size());
  for (uint32_t c : live) {
    sampled.push_back(std::make_shared<VirtualClientProxy>(this, c, ClientId(c)));
  }
  return sampled;
}

std::shared_ptr<ClientProxy> Simulator::Find(const std::string& id) const {
  if (!absl::StartsWith(id, kIdPrefix)) return nullptr;
  const char* begin = id.data() + sizeof(kIdPrefix) - 1;
  const char* end = id.data() + id.size();
  uint64_t index = 0;
  auto [ptr, ec] = std::from_chars(begin, end, index);
  if (ec != std::errc() || ptr != end || index >= population_.size() || id != ClientId(index)) {
    return nullptr;
  }
  return std::make_shared<VirtualClientProxy>(const_cast<Simulator*>(this), index, id);
}

std::pair<client::Dataset, client::Dataset> Simulator::ClientSplit(uint64_t client) const {
  auto [train, held] = client::SplitHoldout(data_.Indices(client), options_.holdout_fraction,
                                            client::ClientSeed(options_.seed, client));
  return {train_.Subset(train), train_.Subset(held)};
}

uint64_t Simulator::TrainerSeed(uint64_t client) const {
  return client::ClientSeed(options_.seed, client);
}

void Simulator::Fit(uint64_t client, const FitIns& ins, FitResultHandler handler,
                    FitFinisher finish) {
  // The client's simulated round, decided before (and without) training.
  const std::vector<int64_t> counts = data_.ClassCounts(client);
  int64_t examples = 0;
  for (int64_t c : counts) examples += c;
  examples -= static_cast<int64_t>(options_.holdout_fraction * static_cast<double>(examples));
  // The model down in full, the update up as the round compresses it (a
  // bad compression config fails in training, below).
  const int64_t down_bytes = ins.parameters->ByteSize();
  const absl::StatusOr<CompressionOptions> compression =
      CompressionFromProto(ins.config.compression());
  const int64_t up_bytes =
      compression.ok()
          ? CompressedUploadBytes(ins.config.frozen_size() > 0
                                      ? Without(*ins.parameters, ins.config.frozen())
                                      : *ins.parameters,
                                  *compression)
          : down_bytes;
  // Each way at the client's own link speed (its profile or trace), else
  // at bandwidth_mbps; no speed at all: transfers take no time.
  auto seconds = [](int64_t bytes, double mbps) {
    return mbps > 0 ? static_cast<double>(bytes) * 8 / (mbps * 1e6) : 0.0;
  };
  const double down_mbps = population_.DownlinkMbps(client);
  const double up_mbps = population_.UplinkMbps(client);
  const double transfer_s =
      seconds(down_bytes, down_mbps > 0 ? down_mbps : options_.bandwidth_mbps) +
      seconds(up_bytes, up_mbps > 0 ? up_mbps : options_.bandwidth_mbps);
  const double compute_s = static_cast<double>(ins.config.local_epochs()) *
                           static_cast<double>(examples) / population_.Speed(client);
  const double finish_s = transfer_s + compute_s;  // into the round
  Rng rng(MixSeed(MixSeed(options_.seed ^ kDropoutSalt, ins.round), client));
  const bool drops = UniformOpen(rng) < options_.dropout_fraction;
  const double drop_s = UniformOpen(rng) * finish_s;

  // The first of these decides the client's round: it drops out, its
  // window closes, the deadline passes, or it finishes.
  absl::Status failure;
  double ends_s = finish_s;  // when the client's part ends
  double heard_at;           // simulated time at which the server hears of it
  {
    absl::MutexLock lock(&mu_);
    SimulatedRound& round = OpenRound(ins.round);
    const double start = round.start_s;
    const double offline_s = population_.OnlineUntil(client, start) - start;
    const double deadline_s = options_.deadline_s > 0 ? options_.deadline_s : finish_s;
    if (drops && drop_s < std::min(offline_s, deadline_s)) {
      failure = absl::UnavailableError(absl::StrFormat(
          "dropped out %.1f s into the round (simulated)", drop_s));
      ends_s = drop_s;
      ++round.dropped;
    } else if (offline_s < std::min(finish_s, deadline_s)) {
      failure = absl::UnavailableError(absl::StrFormat(
          "went offline %.1f s into the round, before finishing at %.1f s (simulated)",
          offline_s, finish_s));
      ends_s = offline_s;
      ++round.offline;
    } else if (deadline_s < finish_s) {
      failure = absl::DeadlineExceededError(absl::StrFormat(
          "would finish %.1f s into the round, after the %g s deadline (simulated)", finish_s,
          options_.deadline_s));
      ends_s = deadline_s;
      ++round.late;
    } else {
      round.transfer_s += transfer_s;
      ++round.finishing;
    }
    // A server cannot tell a client that failed silently from a slow one:
    // with a deadline, it hears of the failure when the deadline passes,
    // and the round lasts until then. (Every other client's part ends by
    // the deadline.)
    const double heard_s = !failure.ok() && options_.deadline_s > 0 ? options_.deadline_s : ends_s;
    round.duration_s = std::max(round.duration_s, heard_s);
    // The clock ends the round at start + duration: the greatest of these
    // sums is that sum, since rounding is monotonic.
    heard_at = start + heard_s;
    if (asked_ == 0) round_real_start_ = last_progress_ = real_clock_->Now();
    ++asked_;
  }

  if (!failure.ok()) {
    executor_->Submit(
        [this, round = ins.round, heard_at, failure, handler](int) -> std::function<void()> {
          return [this, round, heard_at, failure, handler] {
            CountDone(round, Outcome::kSimulatedFailure, heard_at);
            handler(failure).IgnoreError();
          };
        });
    return;
  }
  executor_->Submit([this, client, ins, heard_at, handler, finish](int w) -> std::function<void()> {
    absl::StatusOr<FitRes> res = TrainClient(w, client, ins);
    if (res.ok() && finish) res = finish(*std::move(res));
    return [this, round = ins.round, heard_at, handler, res = std::move(res)]() mutable {
      // Counted, and the clock moved, before the round hears of it: the last
      // result may end it.
      CountDone(round, res.ok() ? Outcome::kTrained : Outcome::kError, heard_at);
      handler(std::move(res)).IgnoreError();  // a refusal is in the RoundRecord
    };
  });
}

absl::StatusOr<FitRes> Simulator::TrainClient(int worker, uint64_t client, const FitIns& ins) {
  client::LocalClient& local = *workers_[worker]->client;
  client::TrainerOptions trainer_options;
  trainer_options.seed = TrainerSeed(client);
  trainer_options.task = options_.task;
  SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer, client::Trainer::Create(trainer_options));
  client::ClientAlgorithmState state;
  {
    absl::MutexLock lock(&mu_);
    auto it = algorithm_states_.find(client);
    if (it != algorithm_states_.end()) state = it->second;
  }
  try {
    auto [train, holdout] = ClientSplit(client);
    local.Assign(std::move(trainer), std::move(train), std::move(holdout), std::move(state));
  } catch (const std::exception& e) {  // c10::Error, std::bad_alloc
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot gather the client's examples: ", e.what()));
  }
  absl::StatusOr<FitRes> res = local.Fit(*ins.parameters, ins.config, ins.round, ins.aux.get());
  if (!res.ok()) return res;
  // What a real client's upload would carry: the compressed update, or the
  // update's and aux's tensors in full.
  res->upload_bytes = res->compressed != nullptr
                          ? static_cast<int64_t>(res->compressed->ByteSizeLong()) +
                                res->aux.ByteSize()
                          : res->update.ByteSize() + res->aux.ByteSize();
  if (!local.algorithm_state().empty()) {
    absl::MutexLock lock(&mu_);
    algorithm_states_[client] = local.algorithm_state();
  }
  return res;
}

void Simulator::Evaluate(uint64_t client, const EvaluateIns& ins,
                         EvaluateResultHandler handler) {
  if (options_.holdout_fraction == 0) {
    // Answered in order like every result, but without gathering any data.
    executor_->Submit([handler](int) -> std::function<void()> {
      return [handler] {
        handler(absl::FailedPreconditionError(
                    "virtual clients keep no held-out data: set data.holdout_fraction"))
            .IgnoreError();
      };
    });
    return;
  }
  executor_->Submit([this, client, ins, handler](int w) -> std::function<void()> {
    absl::StatusOr<EvaluateRes> res = EvaluateClient(w, client, ins);
    return [handler, res = std::move(res)]() mutable { handler(std::move(res)).IgnoreError(); };
  });
}

absl::StatusOr<EvaluateRes> Simulator::EvaluateClient(int worker, uint64_t client,
                                                      const EvaluateIns& ins) {
  client::LocalClient& local = *workers_[worker]->client;
  client::TrainerOptions trainer_options;
  trainer_options.task = options_.task;
  SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer, client::Trainer::Create(trainer_options));
  try {
    auto [train, holdout] = ClientSplit(client);
    local.Assign(std::move(trainer), {}, std::move(holdout), {});
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot gather the client's examples: ", e.what()));
  }
  return local.Evaluate(*ins.parameters, ins.config);
}

SimulatedRound& Simulator::OpenRound(uint32_t round) {
  auto [it, opened] = rounds_.try_emplace(round);
  if (opened) {
    it->second.round = round;
    it->second.start_s = clock_.seconds();
    asked_ = done_ = 0;
  }
  return it->second;
}

void Simulator::CountDone(uint32_t round, Outcome outcome, double heard_at) {
  {
    absl::MutexLock lock(&mu_);
    SimulatedRound& r = rounds_[round];  // opened by Fit
    if (outcome == Outcome::kTrained) ++r.trained;
    if (outcome == Outcome::kError) ++r.errors;
    ++done_;
    // Progress in real time: how long the machine takes, not the fleet.
    const absl::Time now = real_clock_->Now();
    if (done_ < asked_ && now - last_progress_ >= options_.progress_interval) {
      last_progress_ = now;
      const double elapsed = absl::ToDoubleSeconds(now - round_real_start_);
      const double eta = elapsed / static_cast<double>(done_) * static_cast<double>(asked_ - done_);
      spdlog::info("round {}: {}/{} clients done, {:.0f} s, ETA {:.0f} s", round, done_, asked_,
                   elapsed, eta);
    }
  }
  // Outside mu_: the clock wakes the round's waiter, whose lock is its own.
  clock_.AdvanceTo(heard_at);
}

void Simulator::OnRoundEnd(const RoundRecord& record) {
  absl::MutexLock lock(&mu_);
  round_ = record.round + 1;
}

std::vector<SimulatedRound> Simulator::Rounds() const {
  absl::MutexLock lock(&mu_);
  std::vector<SimulatedRound> out;
  for (const auto& [round, r] : rounds_) out.push_back(r);
  return out;
}

Metrics Simulator::RoundMetrics(uint32_t round) const {
  absl::MutexLock lock(&mu_);
  auto it = rounds_.find(round);
  if (it == rounds_.end()) return {};
  const SimulatedRound& r = it->second;
  return {{"sim_round_s", r.duration_s},
          {"sim_clock_s", r.start_s + r.duration_s},
          {"late", r.late},
          {"errors", r.errors},
          {"dropped", r.dropped},
          {"offline", r.offline},
          // What the links cost a client that finished, on average.
          {"sim_transfer_s", r.finishing > 0 ? r.transfer_s / static_cast<double>(r.finishing)
                                             : 0.0}};
}

size_t Simulator::IdleBytes() const {
  return population_.MemoryBytes() + data_.MemoryBytes();
}

}  // namespace shoal::simulation
