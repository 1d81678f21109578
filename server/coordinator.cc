#include "server/coordinator.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/model_dir.h"
#include "common/random.h"
#include "common/status.h"
#include "server/checkpoint.h"
#include "server/result_collector.h"

namespace shoal {
namespace {

// Mixes the run seed with the round so each round samples differently but
// reproducibly.
uint64_t RoundSeed(uint64_t seed, uint32_t round) { return MixSeed(seed, round); }

// ValidateUpdate is the one gate every fit result passes before it can
// touch the aggregate: same tensors as the global model, finite values, a
// positive example count.
// Auxiliary tensors come back in the layout they were sent in, or not at all
// when none were sent.
// FrozenNames resolves the partial fine-tuning patterns against the
// model's tensor names.
absl::StatusOr<std::vector<std::string>> FrozenNames(const CoordinatorOptions& options,
                                                     const Parameters& model);

// NotSentNames is what no client sends: the frozen tensors and the personal
// ones (each personal pattern must match a tensor).
absl::StatusOr<std::vector<std::string>> NotSentNames(const CoordinatorOptions& options,
                                                      const Parameters& model) {
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::string> names, FrozenNames(options, model));
  for (const std::string& pattern : options.personal) {
    bool used = false;
    for (const std::string& name : model.names()) {
      if (!NameMatches({pattern}, name)) continue;
      used = true;
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    if (!used) {
      return absl::InvalidArgumentError(
          absl::StrCat("fit.personal pattern '", pattern, "' matches no tensor of the model"));
    }
  }
  return names;
}

absl::StatusOr<std::vector<std::string>> FrozenNames(const CoordinatorOptions& options,
                                                     const Parameters& model) {
  if (options.freeze.empty() && options.train_only.empty()) return std::vector<std::string>{};
  if (!options.freeze.empty() && !options.train_only.empty()) {
    return absl::InvalidArgumentError("set fit.freeze or fit.train_only, not both");
  }
  const bool freezing = !options.freeze.empty();
  const std::vector<std::string>& patterns = freezing ? options.freeze : options.train_only;
  const char* key = freezing ? "fit.freeze" : "fit.train_only";
  std::vector<bool> used(patterns.size(), false);
  std::vector<std::string> frozen;
  bool trains_something = false;
  for (size_t i = 0; i < model.size(); ++i) {
    bool matched = false;
    for (size_t p = 0; p < patterns.size(); ++p) {
      if (fnmatch(patterns[p].c_str(), model.name(i).c_str(), 0) == 0) used[p] = matched = true;
    }
    if (matched == freezing) {
      frozen.push_back(model.name(i));
    } else if (model.tensor(i).is_floating_point()) {
      trains_something = true;
    }
  }
  for (size_t p = 0; p < patterns.size(); ++p) {
    if (!used[p]) {
      std::string names;
      for (size_t i = 0; i < model.size() && i < 12; ++i) {
        absl::StrAppend(&names, i > 0 ? ", " : "", model.name(i));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          key, " pattern '", patterns[p], "' matches no tensor of the model (", names,
          model.size() > 12 ? ", ..." : "", ")"));
    }
  }
  if (!trains_something) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " leaves no floating-point tensor to train"));
  }
  return frozen;
}

}  // namespace

absl::Status CheckTensorPatterns(const CoordinatorOptions& options, const Parameters& model) {
  return NotSentNames(options, model).status();
}

namespace {

// WithFrozen returns `res` with the frozen tensors, which a client does not
// send, put back as zero changes in the model's order; InvalidArgument for
// a result that sends one.
absl::StatusOr<FitRes> WithFrozen(const Parameters& global, const std::vector<std::string>& frozen,
                                  const FitRes& res) {
  std::map<std::string, at::Tensor> sent;
  for (size_t i = 0; i < res.update.size(); ++i) sent[res.update.name(i)] = res.update.tensor(i);
  FitRes out = res;
  out.update = Parameters();
  for (size_t i = 0; i < global.size(); ++i) {
    const std::string& name = global.name(i);
    const bool is_frozen = std::find(frozen.begin(), frozen.end(), name) != frozen.end();
    auto it = sent.find(name);
    if (is_frozen && it != sent.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' is frozen (fit.freeze / fit.train_only) and must not "
                       "be sent"));
    }
    if (is_frozen) {
      out.update.Add(name, at::zeros_like(global.tensor(i)));
    } else if (it != sent.end()) {
      out.update.Add(name, it->second);
      sent.erase(it);
    }
  }
  // Names the model does not have: left for ValidateUpdate to name.
  for (size_t i = 0; i < res.update.size(); ++i) {
    if (sent.count(res.update.name(i)) > 0) out.update.Add(res.update.name(i), res.update.tensor(i));
  }
  return out;
}

absl::Status ValidateUpdate(const Parameters& global, const Parameters* aux_sent,
                            const FitRes& res) {
  if (res.num_examples <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_examples must be positive, got ", res.num_examples));
  }
  SHOAL_RETURN_IF_ERROR(Annotate(global.CheckCompatible(res.update), "update"));
  SHOAL_RETURN_IF_ERROR(Annotate(res.update.CheckFinite(), "update"));
  if (aux_sent == nullptr) {
    if (!res.aux.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the result carries ", res.aux.size(),
          " auxiliary tensor(s) but the task sent none"));
    }
    return absl::OkStatus();
  }
  SHOAL_RETURN_IF_ERROR(Annotate(aux_sent->CheckCompatible(res.aux), "auxiliary tensors"));
  return Annotate(res.aux.CheckFinite(), "auxiliary tensors");
}

// ExampleBound is the most examples one result of a client may count: the
// configured cap and the client's declaration, the lower of those that are
// set; 0 when neither is.
int64_t ExampleBound(int64_t configured, int64_t declared) {
  if (configured <= 0) return std::max<int64_t>(declared, 0);
  if (declared <= 0) return configured;
  return std::min(configured, declared);
}

// CapExamples returns `count` limited to `bound` (0: unbounded), and logs
// when it had to: a count above its bound is a bug or a lie.
int64_t CapExamples(uint32_t round, const std::string& id, const char* what,
                    int64_t count, int64_t bound) {
  if (bound <= 0 || count <= bound) return count;
  spdlog::warn(
      "round {}: client '{}' reported {} {} examples, above its bound of {}; "
      "counted as {}",
      round, id, count, what, bound, bound);
  return bound;
}

// RoundText is what a round's collector says (fit and evaluate alike).
ResultCollectorText RoundText(uint32_t round) {
  return {absl::StrCat("round ", round, " is closed; the result was not counted"),
          absl::StrCat("the client has no open task in round ", round),
          absl::StrCat("no result before the round ", round, " deadline")};
}

// Refused names the client whose result `status` refused, and logs it.
absl::Status Refused(uint32_t round, const std::string& id, absl::Status status) {
  if (status.ok()) return status;
  status = Annotate(status, absl::StrCat("result of client '", id, "' refused"));
  spdlog::warn("round {}: {}", round, std::string(status.message()));
  return status;
}

// ToClientFailures turns a collector's failures into the round's.
std::vector<ClientFailure> ToClientFailures(
    const std::vector<std::pair<std::string, absl::Status>>& failures) {
  std::vector<ClientFailure> out;
  for (const auto& [id, status] : failures) out.push_back({id, status});
  return out;
}

// ServerAccuracy is the "accuracy" of the round's server-side evaluation.
std::optional<double> ServerAccuracy(const RoundRecord& record) {
  if (!record.server_eval) return std::nullopt;
  auto it = record.server_eval->metrics.find("accuracy");
  if (it == record.server_eval->metrics.end()) return std::nullopt;
  return MetricAsDouble(it->second);
}

}  // namespace

absl::Status CoordinatorOptions::Validate() const {
  if (num_rounds == 0 || num_rounds > kMaxRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_rounds must be in [1, ", kMaxRounds, "], got ", num_rounds));
  }
  if (!(sampling.fraction > 0 && sampling.fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fraction_fit must be in (0, 1], got ", sampling.fraction));
  }
  if (min_fit_clients == 0) {
    return absl::InvalidArgumentError("min_fit_clients must be >= 1");
  }
  if (min_available_clients < min_fit_clients) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_available_clients (", min_available_clients,
        ") must be >= min_fit_clients (", min_fit_clients, ")"));
  }
  if (!(target_accuracy >= 0 && target_accuracy <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_accuracy must be in [0, 1] (0 = none), got ", target_accuracy));
  }
  if (round_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("round_timeout must be positive");
  }
  if (max_examples_per_client < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_examples_per_client must be >= 0 (0 = no fixed cap), got ",
        max_examples_per_client));
  }
  if (secure_aggregation.enabled) SHOAL_RETURN_IF_ERROR(secure_aggregation.Validate());
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateCompressionOptions(compression), "compression"));
  if (secure_aggregation.enabled && compression.kind != Compression::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(
        "compression '", CompressionName(compression.kind),
        "' cannot be combined with secure aggregation: its encoding already quantizes each "
        "update, and a masked input cannot be sparse or re-quantized; turn one of them off"));
  }
  if (clock == nullptr) return absl::InvalidArgumentError("clock must not be null");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(
    CoordinatorOptions options, ClientPool* clients, Strategy* strategy,
    ModelStore* store, Parameters initial) {
  SHOAL_RETURN_IF_ERROR(options.Validate());
  if (options.secure_aggregation.enabled) {
    SHOAL_RETURN_IF_ERROR(CheckSecureAggregationSupported(*strategy));
  }
  SHOAL_RETURN_IF_ERROR(
      Annotate(strategy->CheckCompression(options.compression.kind), "compression"));
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::string> frozen, NotSentNames(options, initial));
  if (!frozen.empty() && options.secure_aggregation.enabled) {
    return absl::InvalidArgumentError(
        "tensors that are not sent (fit.freeze, fit.train_only, fit.personal) cannot be combined "
        "with secure "
        "aggregation yet: the masked input covers every tensor");
  }
  if (initial.empty()) {
    return absl::InvalidArgumentError("the initial model has no parameters");
  }
  SHOAL_RETURN_IF_ERROR(Annotate(initial.CheckFinite(), "initial model"));
  std::unique_ptr<Coordinator> coordinator(
      new Coordinator(std::move(options), clients, strategy, store, std::move(initial)));
  coordinator->frozen_ = std::move(frozen);
  return coordinator;
}

Coordinator::Coordinator(CoordinatorOptions options, ClientPool* clients,
                         Strategy* strategy, ModelStore* store, Parameters initial)
    : options_(std::move(options)), clients_(clients), strategy_(strategy),
      store_(store),
      global_(std::make_shared<const Parameters>(std::move(initial))) {}

std::shared_ptr<const Parameters> Coordinator::global() const {
  absl::MutexLock lock(&mu_);
  return global_;
}

int64_t Coordinator::global_version() const {
  absl::MutexLock lock(&mu_);
  return global_version_;
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Resume(
    CoordinatorOptions options, ClientPool* clients, Strategy* strategy, ModelStore* store,
    const Checkpoint& checkpoint) {
  if (checkpoint.round > kMaxRounds || checkpoint.history.size() != size_t{checkpoint.round} + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a checkpoint after round ", checkpoint.round, " needs the history of rounds 0 to ",
        checkpoint.round, ", got ", checkpoint.history.size(), " rounds"));
  }
  SHOAL_ASSIGN_OR_RETURN(Parameters global, LoadCheckpointedModel(checkpoint, store->dir()));
  SHOAL_ASSIGN_OR_RETURN(ModelRecord model,
                         ReadModelRecord(store->dir(), checkpoint.model_version));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator,
                         Create(std::move(options), clients, strategy, store, std::move(global)));
  // Last: LoadState is all or nothing, so on any error the strategy is as
  // it was built.
  SHOAL_RETURN_IF_ERROR(Annotate(strategy->LoadState(checkpoint.strategy_state),
                                 "cannot restore the strategy state from the checkpoint"));
  coordinator->resumed_ = true;
  coordinator->completed_round_ = checkpoint.round;
  coordinator->restored_history_ = checkpoint.history;
  coordinator->resumed_model_metrics_ = model.metrics;
  coordinator->last_model_ = std::move(model);
  coordinator->stop_reason_ = checkpoint.stop_reason;
  {
    absl::MutexLock lock(&coordinator->mu_);
    coordinator->global_version_ = checkpoint.model_version;
  }
  return coordinator;
}

absl::Status Coordinator::SaveCheckpoint(uint32_t round, const std::vector<RoundRecord>& history) {
  if (checkpointer_ == nullptr) return absl::OkStatus();
  Checkpoint c;
  c.round = round;
  c.num_rounds = std::max(options_.num_rounds, round);
  c.stop_reason = stop_reason_;
  c.model_version = last_model_.version;
  c.model_sha256_hex = last_model_.sha256_hex;
  c.strategy_state = strategy_->SaveState();
  c.history = history;
  SHOAL_RETURN_IF_ERROR(Annotate(checkpointer_->Save(std::move(c)),
                                 absl::StrCat("cannot write the checkpoint of round ", round)));
  spdlog::info("round {}: checkpoint written to {}", round, checkpointer_->dir());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RoundRecord>> Coordinator::Run() {
  absl::StatusOr<std::vector<RoundRecord>> history = RunRounds();
  // Clients hear of the end either way; after an error (the store or the
  // checkpoint folder became unwritable) they would otherwise retry until
  // they give up, minutes later. The error itself stays in the server's log.
  clients_->ShutdownAll(
      history.ok() ? "run complete" : "the server stopped on an error",
      global_version());
  return history;
}

bool Coordinator::WaitForFirstClients() {
  // In slices, so a stop requested meanwhile (SIGTERM) is heard within one.
  Clock& clock = *options_.clock;
  const absl::Time give_up = clock.Now() + options_.wait_for_clients_timeout;
  while (true) {
    const absl::Duration slice = std::min(absl::Seconds(1), give_up - clock.Now());
    if (clients_->WaitForLive(options_.min_available_clients,
                              std::max(slice, absl::ZeroDuration()))) {
      return true;
    }
    if (stop_requested_.load() || clock.Now() >= give_up) return false;
  }
}

absl::StatusOr<std::vector<RoundRecord>> Coordinator::RunRounds() {
  std::vector<RoundRecord> history;
  if (resumed_) {
    // The store's memory is new: serve the checkpointed version again (the
    // same bytes, so the same SHA-256 the checkpoint names).
    // A round that was running when the server died may have saved its
    // model without completing; it runs again, and its model must not be
    // found meanwhile.
    for (const std::string& name : RemoveModelVersionsAfter(store_->dir(), completed_round_)) {
      spdlog::info("removed {}: its round never completed", name);
    }
    const std::string want_sha = last_model_.sha256_hex;
    SHOAL_ASSIGN_OR_RETURN(last_model_,
                           store_->Save(global_version(), *global(), resumed_model_metrics_));
    if (last_model_.sha256_hex != want_sha) {
      return absl::InternalError(absl::StrCat(
          "global model version ", last_model_.version, " stored again has SHA-256 ",
          last_model_.sha256_hex, ", not the checkpoint's ", want_sha));
    }
    history = std::move(restored_history_);
    for (RoundObserver* o : observers_) o->OnRestored(history);
  } else {
    SHOAL_ASSIGN_OR_RETURN(last_model_, store_->Save(0, *global(), {}));
  }
  // A zero timeout takes the pool's answer as it is (the simulator's pool
  // waits in simulated time itself).
  const bool waits = options_.wait_for_clients_timeout > absl::ZeroDuration();
  if (waits) {
    spdlog::info("waiting for {} client(s) to join (up to {})", options_.min_available_clients,
                 absl::FormatDuration(options_.wait_for_clients_timeout));
  }
  if (!WaitForFirstClients()) {
    if (stop_requested_.load()) {
      spdlog::warn(
          "stop requested while waiting for clients: ending before round {}",
          completed_round_ + 1);
      return history;
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "only ", clients_->LiveClientIds().size(), " of the ", options_.min_available_clients,
        " clients needed ",
        waits ? absl::StrCat("joined within ",
                             absl::FormatDuration(options_.wait_for_clients_timeout))
              : std::string("are live")));
  }
  if (!resumed_) {
    // Round 0 is the initial model: its evaluation is the baseline every
    // later round is compared with.
    RoundRecord initial;
    initial.train_loss = std::numeric_limits<double>::quiet_NaN();
    if (auto eval = strategy_->EvaluateGlobal(0, *global())) {
      if (eval->ok()) initial.server_eval = **eval;
    }
    history.push_back(std::move(initial));
    SHOAL_RETURN_IF_ERROR(SaveCheckpoint(0, history));
    for (RoundObserver* o : observers_) o->OnRoundEnd(history.back());
  }
  for (uint32_t round = completed_round_ + 1;
       round <= options_.num_rounds && stop_reason_.empty(); ++round) {
    if (stop_requested_.load()) {
      spdlog::warn("stop requested: ending after round {}", round - 1);
      break;
    }
    if (std::optional<std::string> reason = strategy_->StopReason(round)) {
      stop_reason_ = *std::move(reason);
      spdlog::warn("ending after round {}: {}", round - 1, stop_reason_);
      // A restart must not train on either.
      SHOAL_RETURN_IF_ERROR(SaveCheckpoint(round - 1, history));
      break;
    }
    SHOAL_ASSIGN_OR_RETURN(RoundRecord record, RunRound(round));
    const std::optional<double> accuracy = ServerAccuracy(record);
    if (options_.target_accuracy > 0 && accuracy && *accuracy >= options_.target_accuracy) {
      stop_reason_ = absl::StrFormat("test accuracy %.2f%% reached the target %.2f%% in round %d",
                                     100 * *accuracy, 100 * options_.target_accuracy, round);
    }
    history.push_back(std::move(record));
    SHOAL_RETURN_IF_ERROR(SaveCheckpoint(round, history));
    for (RoundObserver* o : observers_) o->OnRoundEnd(history.back());
    if (!stop_reason_.empty()) spdlog::info("{}", stop_reason_);
  }
  return history;
}

absl::StatusOr<RoundRecord> Coordinator::RunRound(uint32_t round) {
  const absl::Time start = options_.clock->Now();
  RoundRecord record;
  record.round = round;
  record.model_version = global_version();

  // Wait (within the round's budget) for enough clients before sampling: a
  // restart of a few devices between rounds should not fail the round.
  const absl::Time deadline = start + options_.round_timeout;
  clients_->WaitForLive(options_.min_fit_clients, options_.round_timeout / 4);
  std::vector<std::shared_ptr<ClientProxy>> sampled =
      clients_->Sample(options_.sampling, RoundSeed(options_.seed, round));
  record.sampled = sampled.size();
  for (RoundObserver* o : observers_) o->OnRoundStart(round, sampled.size());

  std::shared_ptr<const Parameters> global = this->global();
  std::vector<std::string> ids;
  std::map<std::string, std::shared_ptr<ClientProxy>> by_id;
  // Fixed when the round starts, like the cohort: a Join mid-round does not
  // change what the round counts.
  std::map<std::string, int64_t> example_bound;
  for (const auto& p : sampled) {
    ids.push_back(p->id());
    by_id[p->id()] = p;
    example_bound[p->id()] = ExampleBound(options_.max_examples_per_client,
                                          p->declared_examples().train);
  }

  std::vector<FitInstruction> plan = strategy_->ConfigureFit(round, *global, ids);
  std::unique_ptr<FitAggregator> aggregator = strategy_->BeginAggregateFit(round, global);
  std::map<std::string, std::shared_ptr<const Parameters>> aux_sent;
  for (const FitInstruction& ins : plan) aux_sent[ins.client_id] = ins.aux;
  // Weighted by the (capped) example counts, in float64: no count, however
  // large, can overflow these sums.
  double loss_sum = 0;
  double loss_weight = 0;
  if (options_.secure_aggregation.enabled) {
    RunSecureFit(round, global, plan, by_id, deadline, *aggregator, record);
  } else {
    auto fold = [&](const std::string& id, const FitRes& sent) -> absl::Status {
      std::optional<FitRes> completed;
      if (!frozen_.empty()) {
        SHOAL_ASSIGN_OR_RETURN(completed, WithFrozen(*global, frozen_, sent));
      }
      const FitRes& res = completed ? *completed : sent;
      const auto aux = aux_sent.find(id);
      SHOAL_RETURN_IF_ERROR(
          ValidateUpdate(*global, aux == aux_sent.end() ? nullptr : aux->second.get(), res));
      // Counted at most at the client's bound, here and by the strategy.
      const auto bound = example_bound.find(id);
      const int64_t n = CapExamples(round, id, "training", res.num_examples,
                                    bound == example_bound.end() ? 0 : bound->second);
      std::optional<FitRes> capped;
      if (n != res.num_examples) {
        capped = res;
        capped->num_examples = n;
      }
      const absl::Time folding = Clock::Real()->Now();
      const absl::Status accepted = aggregator->Accept(id, capped ? *capped : res);
      record.aggregate_seconds += absl::ToDoubleSeconds(Clock::Real()->Now() - folding);
      SHOAL_RETURN_IF_ERROR(accepted);
      auto loss = res.metrics.find(kTrainLossMetric);
      if (loss != res.metrics.end()) {
        loss_sum += MetricAsDouble(loss->second) * static_cast<double>(n);
        loss_weight += static_cast<double>(n);
      }
      record.train_examples = AddExampleCounts(record.train_examples, n);
      record.upload_bytes += res.upload_bytes;
      return absl::OkStatus();
    };
    auto collector = std::make_shared<ResultCollector<std::string, FitRes>>(
        ids, RoundText(round),
        [&](const std::string& id, FitRes& res) { return Refused(round, id, fold(id, res)); },
        options_.clock);

    for (const FitInstruction& ins : plan) {
      auto it = by_id.find(ins.client_id);
      if (it == by_id.end()) continue;  // a strategy may skip clients
      FitIns fit{round, record.model_version, global, ins.config, ins.aux, /*secagg=*/nullptr};
      if (options_.compression.kind != Compression::kNone) {
        CompressionToProto(options_.compression, fit.config.mutable_compression());
      }
      for (const std::string& name : frozen_) fit.config.add_frozen(name);
      std::string id = ins.client_id;
      it->second->Fit(fit, deadline, [collector, id](absl::StatusOr<FitRes> res) {
        return collector->Offer(id, std::move(res));
      });
    }
    // A client that let the deadline pass is likely gone; were it still
    // counted live (for up to the pool's liveness timeout) the next round
    // would ask it again and wait for its deadline too.
    for (const std::string& late : collector->WaitAndClose(deadline)) {
      by_id[late]->Cancel();
      clients_->MarkUnresponsive(late);
    }
    record.answered = collector->answered();
    record.failures = ToClientFailures(collector->failures());
  }
  // A client that declined (its may-train check said not now) did not fail.
  {
    std::vector<ClientFailure> failed;
    for (ClientFailure& f : record.failures) {
      (IsDeclined(f.status) ? record.declined : failed).push_back(std::move(f));
    }
    record.failures = std::move(failed);
  }
  record.train_loss = loss_weight > 0
                          ? loss_sum / loss_weight
                          : std::numeric_limits<double>::quiet_NaN();

  if (!record.note.empty()) {
    // The secure-aggregation session aborted: nothing to aggregate.
  } else if (record.answered < options_.min_fit_clients) {
    record.note = absl::StrCat("only ", record.answered, " of ", record.sampled,
                               " sampled clients returned a valid result",
                               record.declined.empty()
                                   ? std::string()
                                   : absl::StrCat(" (", record.declined.size(), " declined)"),
                               " (min_fit_clients = ", options_.min_fit_clients,
                               "); the global model is unchanged");
  } else {
    const absl::Time finishing = Clock::Real()->Now();
    absl::StatusOr<Parameters> next = aggregator->Finish(record.failures);
    record.aggregate_seconds += absl::ToDoubleSeconds(Clock::Real()->Now() - finishing);
    absl::Status ok = next.ok() ? global->CheckCompatible(*next) : next.status();
    if (ok.ok()) ok = next->CheckFinite();
    if (!ok.ok()) {
      record.note = absl::StrCat("aggregation failed (", ok.message(),
                                 "); the global model is unchanged");
    } else {
      auto fresh = std::make_shared<const Parameters>(*std::move(next));
      {
        absl::MutexLock lock(&mu_);
        global_ = fresh;
        global_version_ = round;
      }
      record.model_updated = true;
      record.model_version = round;
      record.strategy_metrics = aggregator->RoundMetrics();
    }
  }
  if (!record.note.empty()) spdlog::warn("round {}: {}", round, record.note);

  std::shared_ptr<const Parameters> now_global = this->global();
  const absl::Time evaluating = Clock::Real()->Now();
  auto eval = strategy_->EvaluateGlobal(round, *now_global);
  record.evaluate_seconds = absl::ToDoubleSeconds(Clock::Real()->Now() - evaluating);
  if (eval) {
    if (eval->ok()) {
      record.server_eval = **eval;
    } else {
      spdlog::warn("round {}: server-side evaluation failed: {}", round,
                   std::string(eval->status().message()));
    }
  }
  // Stored before federated evaluation: the evaluate tasks name this version.
  if (record.model_updated) {
    Metrics metrics;
    if (record.server_eval) {
      metrics["test_loss"] = record.server_eval->loss;
      for (const auto& [k, v] : record.server_eval->metrics) metrics["test_" + k] = v;
    }
    if (loss_weight > 0) metrics["train_loss"] = record.train_loss;
    metrics["clients"] = static_cast<int64_t>(record.answered);
    for (const auto& [k, v] : record.strategy_metrics) metrics[k] = v;
    SHOAL_ASSIGN_OR_RETURN(last_model_, store_->Save(round, *now_global, metrics));
  }
  RunFederatedEvaluation(round, start + 2 * options_.round_timeout, record);
  record.seconds = absl::ToDoubleSeconds(options_.clock->Now() - start);
  return record;
}

void Coordinator::RunSecureFit(uint32_t round, std::shared_ptr<const Parameters> global,
                               const std::vector<FitInstruction>& plan,
                               const std::map<std::string, std::shared_ptr<ClientProxy>>& by_id,
                               absl::Time deadline, FitAggregator& aggregator,
                               RoundRecord& record) {
  std::vector<SecureCohortMember> cohort;
  for (const FitInstruction& ins : plan) {
    auto it = by_id.find(ins.client_id);
    if (it == by_id.end()) continue;  // a strategy may skip clients
    cohort.push_back({it->second, FitIns{round, record.model_version, global, ins.config,
                                         /*aux=*/nullptr, /*secagg=*/nullptr}});
  }
  SecureRoundResult result =
      RunSecureRound(round, *global, cohort, options_.secure_aggregation, deadline, options_.clock,
                     [&](const std::string& stage, size_t answered, size_t asked) {
                       for (RoundObserver* o : observers_)
                         o->OnSecureStage(round, stage, answered, asked);
                     });
  record.failures = std::move(result.failures);
  record.secagg = std::move(result.metrics);
  if (!result.status.ok()) {
    record.note = absl::StrCat(result.status.message(), "; the global model is unchanged");
    return;
  }
  // The session's one result stands for every summed client: validated and
  // folded like any update (a mean-based strategy gets the same model).
  absl::Status accepted = ValidateUpdate(*global, nullptr, result.aggregate);
  if (accepted.ok()) accepted = aggregator.Accept("secure-aggregate", result.aggregate);
  if (!accepted.ok()) {
    record.note = absl::StrCat("the securely aggregated update was refused (",
                               accepted.message(), "); the global model is unchanged");
    return;
  }
  record.answered = result.summed;
  record.train_examples = result.aggregate.num_examples;
}

void Coordinator::RunFederatedEvaluation(uint32_t round, absl::Time deadline,
                                         RoundRecord& record) {
  std::shared_ptr<const Parameters> global = this->global();
  std::vector<std::string> live = clients_->LiveClientIds();
  std::vector<EvaluateInstruction> plan =
      strategy_->ConfigureEvaluate(round, *global, live);
  if (plan.empty()) return;
  std::vector<std::string> ids;
  std::map<std::string, int64_t> example_bound;
  for (const auto& ins : plan) {
    ids.push_back(ins.client_id);
    const std::shared_ptr<ClientProxy> proxy = clients_->Find(ins.client_id);
    example_bound[ins.client_id] = ExampleBound(
        options_.max_examples_per_client,
        proxy != nullptr ? proxy->declared_examples().evaluate : 0);
  }
  std::vector<std::pair<std::string, EvaluateRes>> results;
  auto fold = [&](const std::string& id, const EvaluateRes& res) -> absl::Status {
    if (res.num_examples <= 0 || !std::isfinite(res.loss)) {
      return absl::InvalidArgumentError("evaluation needs num_examples > 0 and a finite loss");
    }
    results.emplace_back(id, res);
    results.back().second.num_examples =
        CapExamples(round, id, "evaluation", res.num_examples, example_bound[id]);
    return absl::OkStatus();
  };
  auto collector = std::make_shared<ResultCollector<std::string, EvaluateRes>>(
      ids, RoundText(round),
      [&](const std::string& id, EvaluateRes& res) { return Refused(round, id, fold(id, res)); },
      options_.clock);
  for (const auto& ins : plan) {
    std::shared_ptr<ClientProxy> proxy = clients_->Find(ins.client_id);
    if (proxy == nullptr) continue;
    EvaluateIns eval{round, global_version(), global, ins.config};
    std::string id = ins.client_id;
    proxy->Evaluate(eval, deadline, [collector, id](absl::StatusOr<EvaluateRes> res) {
      return collector->Offer(id, std::move(res));
    });
  }
  for (const std::string& late : collector->WaitAndClose(deadline)) {
    if (auto proxy = clients_->Find(late)) proxy->Cancel();
    clients_->MarkUnresponsive(late);
  }
  absl::StatusOr<EvaluateRes> agg =
      strategy_->AggregateEvaluate(round, results, ToClientFailures(collector->failures()));
  if (agg.ok()) record.federated_eval = *agg;
}

}  // namespace shoal
