// Coordinator: the round engine. For R rounds it samples clients, hands them
// fit tasks through their ClientProxy, folds results into the strategy's
// aggregator as they arrive until every sampled client answered or the round
// deadline passed, stores the new global model and evaluates it. It never
// knows how a client is reached.
#ifndef SHOAL_SERVER_COORDINATOR_H_
#define SHOAL_SERVER_COORDINATOR_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/types.h"
#include "common/update_compression.h"
#include "server/client_pool.h"
#include "server/model_store.h"
#include "server/secure_round.h"
#include "strategies/strategy.h"

namespace shoal {

class CheckpointWriter;
struct Checkpoint;

// kMaxRounds bounds a run's rounds (config, flags, checkpoints), far below
// where a round number or `round + 1` could wrap.
inline constexpr uint32_t kMaxRounds = 1000000;

// CoordinatorOptions. Defaults suit a handful of real devices.
struct CoordinatorOptions {
  uint32_t num_rounds = 10;  // in [1, kMaxRounds]
  // Who is asked each round: ceil(fraction * live), at least min_clients.
  SamplingOptions sampling;
  // A round updates the global model only when at least this many valid
  // results arrived; otherwise the model stays as it was and the round is
  // reported as failed.
  uint32_t min_fit_clients = 2;
  // Sampling starts once this many clients are live.
  uint32_t min_available_clients = 2;
  // How long a round waits for results. A client that has not answered by
  // then counts as a failure.
  absl::Duration round_timeout = absl::Minutes(5);
  // How long the first round waits for min_available_clients; 0 takes
  // the pool's ClientPool::WaitForLive answer as it is (the simulator, whose
  // WaitForLive moves its clock on until enough clients are online).
  absl::Duration wait_for_clients_timeout = absl::Minutes(10);
  // The most examples one result may count (fit and evaluate), whatever
  // the client reports; 0 (default): no fixed cap. Each client is also
  // capped at what it declared when it joined (ClientProxy::
  // declared_examples), when it declared something. A result over its cap
  // is counted at the cap, not refused (as secure aggregation's max_weight
  // does): a client could report exactly the cap anyway, and an honest
  // device whose data grew since it joined keeps contributing.
  int64_t max_examples_per_client = 0;
  // Seeds client sampling (mixed with the round number).
  uint64_t seed = 0;
  // End the run after the first round whose server-side evaluation reaches
  // this "accuracy" (a fraction); 0 = run every round.
  double target_accuracy = 0;
  // Secure aggregation (SecAgg+): the server learns only the weighted mean
  // of each round's updates. Needs a strategy that aggregates by the mean.
  SecureAggregationOptions secure_aggregation;
  // How clients compress the updates they upload (stamped on every fit
  // task's FitConfig.compression). Refused with secure aggregation and
  // where the strategy says no (Strategy::CheckCompression).
  CompressionOptions compression;
  // Partial fine-tuning: glob patterns (fnmatch) over the model's tensor
  // names. Tensors matching `freeze`, or not matching `train_only` (at most
  // one of the two is set), are neither trained nor uploaded (every fit
  // task names them, FitConfig.frozen) and count as unchanged. Create
  // refuses a pattern that matches nothing, freezing every float tensor,
  // and freezing under secure aggregation.
  std::vector<std::string> freeze;
  std::vector<std::string> train_only;
  // Personal tensors (fit.personal; FedPer heads, FedBN statistics): each
  // device trains and keeps its own (LocalClient::set_personal) and never
  // sends them; to the server they are frozen: named in FitConfig.frozen and
  // counted unchanged.
  std::vector<std::string> personal;
  // Where the rounds read the time and wait for their deadlines (also the
  // secure round's). Not owned; tests hand in a FakeClock.
  Clock* clock = Clock::Real();

  // Validate returns InvalidArgument naming the first bad option.
  absl::Status Validate() const;
};

// RoundRecord: what happened in one round, for progress and history.
struct RoundRecord {
  uint32_t round = 0;
  size_t sampled = 0;
  size_t answered = 0;  // valid results folded in
  std::vector<ClientFailure> failures;
  // Sampled clients that declined to train this round (their may-train
  // check said not now; DeclinedError), with their reasons: neither
  // answered nor failed.
  std::vector<ClientFailure> declined;
  bool model_updated = false;
  int64_t model_version = 0;  // the global version after the round
  double train_loss = 0;      // num_examples-weighted; NaN without results
  // Examples counted (each result capped at its client's bound; the sum
  // saturates at INT64_MAX).
  int64_t train_examples = 0;
  // Bytes of the valid results' uploads, as their transports counted them.
  int64_t upload_bytes = 0;
  std::optional<EvaluateRes> server_eval;
  std::optional<EvaluateRes> federated_eval;
  double seconds = 0;
  // Real seconds the server spent folding the results in and finishing the
  // aggregate (the strategy's server step included), and evaluating the
  // new model itself: compute time, whatever clock the round ran on.
  double aggregate_seconds = 0;
  double evaluate_seconds = 0;
  std::string note;  // why the model was not updated, if it was not
  // What the strategy reported for the round (FitAggregator::RoundMetrics),
  // e.g. the privacy spent so far.
  Metrics strategy_metrics;
  // Secure aggregation's figures (empty without it): the graph's degree and
  // threshold, and the clients left after each stage.
  Metrics secagg;
};

// CheckTensorPatterns checks options.freeze, train_only and personal
// against `model`'s tensor names as Create does, so that a config can be
// refused before a run is queued or started (InvalidArgument naming the
// pattern and the model's tensors).
absl::Status CheckTensorPatterns(const CoordinatorOptions& options, const Parameters& model);

// RoundObserver hears about rounds as they run (progress display, metrics
// history). Called on the Coordinator's thread.
class RoundObserver {
 public:
  virtual ~RoundObserver() = default;
  virtual void OnRoundStart(uint32_t round, size_t sampled) {}
  // A secure-aggregation stage closed: `answered` of `asked` clients are
  // still in.
  virtual void OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                             size_t asked) {}
  virtual void OnRoundEnd(const RoundRecord& record) = 0;
  // OnRestored: a resumed run hands over the rounds completed before the
  // restart (0..r, from the checkpoint) once, before any new round; they are
  // not reported again through OnRoundEnd.
  virtual void OnRestored(const std::vector<RoundRecord>& history) {}
};

// Coordinator does not own the ClientPool, Strategy or ModelStore; they
// must outlive it. Run() is called once, from one thread; RequestStop() may be
// called from any thread.
class Coordinator {
 public:
  // Create validates `options` and that `initial` is non-empty and finite.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(
      CoordinatorOptions options, ClientPool* clients, Strategy* strategy,
      ModelStore* store, Parameters initial);

  // Resume creates a Coordinator "after round checkpoint.round": the global
  // model is the checkpoint's version, read from `store` and checked against
  // its SHA-256 (FailedPrecondition when missing or different), and the
  // strategy's state is loaded from the checkpoint (InvalidArgument when it
  // does not fit; the strategy is then untouched). Run() goes on with round
  // checkpoint.round + 1. `strategy` must be freshly built with the same
  // parameters as the one that wrote the checkpoint.
  //
  // Example:
  //   SHOAL_ASSIGN_OR_RETURN(Checkpoint c, ReadCheckpoint(dir));
  //   SHOAL_ASSIGN_OR_RETURN(auto coordinator,
  //       Coordinator::Resume(options, &clients, strategy.get(), store.get(), c));
  static absl::StatusOr<std::unique_ptr<Coordinator>> Resume(
      CoordinatorOptions options, ClientPool* clients, Strategy* strategy,
      ModelStore* store, const Checkpoint& checkpoint);

  // SetCheckpointWriter makes Run() write a checkpoint after every completed
  // round (round 0 = the initial model evaluated), once the round's model
  // version is stored and before observers hear of the round, so a restart
  // never loses a reported round nor runs a checkpointed one again. Not
  // owned; null (the default) writes none. A failed write ends the run.
  void SetCheckpointWriter(CheckpointWriter* writer) { checkpointer_ = writer; }

  // The last round completed before Run() (0 for a fresh run).
  uint32_t resumed_after() const { return completed_round_; }

  void AddObserver(RoundObserver* observer) { observers_.push_back(observer); }

  // Run stores the initial model as version 0, evaluates it (reported as
  // round 0, the first entry of the history), runs the rounds, and finally
  // tells every client the run is over. A resumed Coordinator instead
  // serves the checkpointed version again, hands observers the restored
  // history and runs the rounds after the checkpoint; its history holds
  // every round from 0. It fails only when the run
  // cannot go on (no clients in time, the store cannot write); rounds with
  // too few results are reported in their RoundRecord and the run goes on.
  // The clients are told the run is over on that path too, so they stop
  // retrying. The strategy may end the run early (Strategy::StopReason);
  // stop_reason() then says why.
  absl::StatusOr<std::vector<RoundRecord>> Run();

  // RequestStop ends the run after the round in progress, or at once while
  // Run() is still waiting for the first clients. It may come before Run().
  // The run can be resumed from its checkpoint (stop_reason() stays empty).
  void RequestStop() { stop_requested_.store(true); }

  // Why the run ended before num_rounds, if it did (after Run returns).
  const std::string& stop_reason() const { return stop_reason_; }

  // global returns the current global parameters.
  std::shared_ptr<const Parameters> global() const;
  int64_t global_version() const;

 private:
  Coordinator(CoordinatorOptions options, ClientPool* clients,
              Strategy* strategy, ModelStore* store, Parameters initial);
  // RunRounds is Run() but for telling the clients that the run is over.
  absl::StatusOr<std::vector<RoundRecord>> RunRounds();
  // WaitForFirstClients waits for min_available_clients, giving up early
  // when a stop is requested; false when they did not come.
  bool WaitForFirstClients();
  absl::StatusOr<RoundRecord> RunRound(uint32_t round);
  // RunSecureFit is the fit stage of a securely aggregated round: it folds
  // the one aggregate the session yields into `aggregator`.
  void RunSecureFit(uint32_t round, std::shared_ptr<const Parameters> global,
                    const std::vector<FitInstruction>& plan,
                    const std::map<std::string, std::shared_ptr<ClientProxy>>& by_id,
                    absl::Time deadline, FitAggregator& aggregator, RoundRecord& record);
  void RunFederatedEvaluation(uint32_t round, absl::Time deadline,
                              RoundRecord& record);
  // SaveCheckpoint writes the checkpoint after `round` (a no-op without a
  // writer).
  absl::Status SaveCheckpoint(uint32_t round, const std::vector<RoundRecord>& history);

  const CoordinatorOptions options_;
  ClientPool* const clients_;
  Strategy* const strategy_;
  ModelStore* const store_;
  std::vector<RoundObserver*> observers_;
  std::atomic<bool> stop_requested_{false};
  std::string stop_reason_;
  CheckpointWriter* checkpointer_ = nullptr;
  // Resuming: the last round completed before the restart, the rounds it
  // reported, and the stored model's metrics (kept when it is served again).
  bool resumed_ = false;
  // The tensors no client trains or uploads (options_.freeze / train_only).
  std::vector<std::string> frozen_;
  uint32_t completed_round_ = 0;
  std::vector<RoundRecord> restored_history_;
  Metrics resumed_model_metrics_;
  // The newest stored global model version (what a checkpoint names).
  ModelRecord last_model_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Parameters> global_ ABSL_GUARDED_BY(mu_);
  int64_t global_version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_COORDINATOR_H_
