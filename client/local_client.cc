#include "client/local_client.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client_algorithm_registry.h"
#include "client/dataset_evaluator.h"
#include "common/files.h"
#include "common/quote.h"
#include "common/random.h"
#include "common/status.h"
#include "common/update_compression.h"

namespace shoal::client {

namespace {

// Stochastic rounding's seed: the client's seed and the round.
constexpr uint64_t kCompressionSalt = 0x636f6d70;  // "comp"

// CreateAlgorithms makes this round's instances of the client algorithms
// the config names, in order.
absl::StatusOr<std::vector<std::unique_ptr<ClientAlgorithm>>> CreateAlgorithms(
    const v1::FitConfig& config) {
  std::vector<std::unique_ptr<ClientAlgorithm>> out;
  std::set<std::string> names;
  for (const v1::ClientAlgorithmConfig& entry : config.client_algorithms()) {
    if (!names.insert(entry.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fit config names client algorithm ", QuoteForMessage(entry.name(), 80),
          " more than once"));
    }
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ClientAlgorithm> algorithm,
                           CreateClientAlgorithm(entry));
    out.push_back(std::move(algorithm));
  }
  return out;
}

// Residuals returns the top-k residuals kept in `state` when each fits
// `update` (same names and shapes), and none otherwise: after a model
// change they mean nothing.
std::map<std::string, at::Tensor> Residuals(const ClientAlgorithmState& state,
                                            const Parameters& update) {
  std::map<std::string, at::Tensor> out;
  auto it = state.find(kCompressionResidualState);
  if (it == state.end()) return out;
  std::map<std::string, at::Tensor> by_name;
  for (size_t i = 0; i < update.size(); ++i) by_name[update.name(i)] = update.tensor(i);
  for (size_t i = 0; i < it->second.size(); ++i) {
    auto u = by_name.find(it->second.name(i));
    if (u == by_name.end() || !u->second.sizes().equals(it->second.tensor(i).sizes())) return {};
    out[it->second.name(i)] = it->second.tensor(i);
  }
  return out;
}

// Compress replaces res->update with what the server will decode from its
// compressed form, which it puts in res->compressed; `residuals` are
// top-k's, updated. Its time is reported as "compress_seconds".
absl::Status Compress(const Parameters& global, const CompressionOptions& options, uint64_t seed,
                      std::map<std::string, at::Tensor>* residuals, FitRes* res) {
  const absl::Time start = absl::Now();
  auto wire = std::make_shared<v1::UpdateProto>();
  SHOAL_RETURN_IF_ERROR(
      Annotate(CompressUpdate(res->update, options, seed, residuals, wire.get()), "compression"));
  SHOAL_ASSIGN_OR_RETURN(res->update, Annotate(DecompressUpdate(global, *wire), "compression"));
  res->compressed = std::move(wire);
  res->metrics["compress_seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
  return absl::OkStatus();
}

}  // namespace

namespace {

constexpr char kClientStateFile[] = "client_state.pb";
constexpr uint64_t kMaxClientStateBytes = uint64_t{1} << 31;

}  // namespace

absl::StatusOr<ClientAlgorithmState> ReadClientState(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kClientStateFile);
  SHOAL_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path, kMaxClientStateBytes));
  v1::ClientStateProto proto;
  if (!proto.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(path, " is not a ClientStateProto"));
  }
  ClientAlgorithmState state;
  for (const auto& [name, params] : proto.states()) {
    absl::StatusOr<Parameters> p = ParametersFromProto(params);
    if (!p.ok()) return Annotate(p.status(), absl::StrCat(path, ", state '", name, "'"));
    state[name] = *std::move(p);
  }
  return state;
}

absl::Status WriteClientState(const std::string& dir, const ClientAlgorithmState& state) {
  v1::ClientStateProto proto;
  for (const auto& [name, params] : state) ToProto(params, &(*proto.mutable_states())[name]);
  return WriteFileAtomically(absl::StrCat(dir, "/", kClientStateFile), proto.SerializeAsString());
}

absl::StatusOr<Parameters> WithPersonal(const Parameters& global, const Parameters& personal) {
  std::map<std::string, at::Tensor> mine;
  for (size_t i = 0; i < personal.size(); ++i) {
    const std::string& name = personal.name(i);
    auto g = std::find(global.names().begin(), global.names().end(), name);
    if (g == global.names().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("personal tensor '", name, "' is not in the model"));
    }
    const at::Tensor& like = global.tensor(static_cast<size_t>(g - global.names().begin()));
    const at::Tensor& t = personal.tensor(i);
    if (!t.sizes().equals(like.sizes()) || t.scalar_type() != like.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "personal tensor '", name, "' has another shape or dtype than the model's"));
    }
    if (t.is_floating_point() && !at::isfinite(t).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat("personal tensor '", name, "' is not finite"));
    }
    mine[name] = t;
  }
  Parameters out;
  for (size_t i = 0; i < global.size(); ++i) {
    auto it = mine.find(global.name(i));
    out.Add(global.name(i), it != mine.end() ? it->second : global.tensor(i));
  }
  return out;
}

Parameters LocalClient::PersonalModel(const Parameters& global) const {
  auto kept = algorithm_state_.find(kPersonalState);
  if (personal_.empty() || kept == algorithm_state_.end()) return global;
  // Kept for another model (the run changed it): start again from the
  // global tensors.
  absl::StatusOr<Parameters> mine = WithPersonal(global, kept->second);
  return mine.ok() ? *std::move(mine) : global;
}

absl::StatusOr<FitRes> LocalClient::Fit(const Parameters& global_model,
                                        const v1::FitConfig& task_config, uint32_t round,
                                        const Parameters* aux) {
  const absl::Time start = absl::Now();
  // Personal tensors: trained from this client's own values, never sent.
  std::vector<std::string> personal;
  for (const std::string& name : global_model.names()) {
    if (NameMatches(personal_, name)) personal.push_back(name);
  }
  const Parameters global = PersonalModel(global_model);
  v1::FitConfig config = task_config;
  if (!personal.empty()) {
    // The server lists them as frozen (it never sees them); here they train.
    config.clear_frozen();
    for (const std::string& name : task_config.frozen()) {
      if (std::find(personal.begin(), personal.end(), name) == personal.end()) {
        config.add_frozen(name);
      }
    }
  }
  std::vector<std::string> not_sent(task_config.frozen().begin(), task_config.frozen().end());
  not_sent.insert(not_sent.end(), personal.begin(), personal.end());
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<ClientAlgorithm>> algorithms,
                         CreateAlgorithms(config));
  // Each algorithm works on a copy of its state, kept only if the round
  // succeeds.
  std::vector<Parameters> states;
  std::vector<ClientAlgorithm*> hooks;
  for (int i = 0; i < config.client_algorithms_size(); ++i) {
    auto it = algorithm_state_.find(config.client_algorithms(i).name());
    states.push_back(it == algorithm_state_.end() ? Parameters{} : it->second);
    hooks.push_back(algorithms[i].get());
  }
  const ClientRound client_round{round, global, config, aux};
  for (size_t i = 0; i < hooks.size(); ++i) {
    SHOAL_RETURN_IF_ERROR(hooks[i]->BeforeTraining(client_round, &states[i]));
  }
  SHOAL_ASSIGN_OR_RETURN(FitOutcome outcome,
                         trainer_.Fit(*model_, global, *train_, config, round, hooks));
  FitRes res;
  res.update = outcome.update;
  res.num_examples = outcome.num_examples;
  res.metrics[kTrainLossMetric] = outcome.train_loss;
  for (const auto& [name, value] : outcome.train_metrics) res.metrics["train_" + name] = value;
  res.metrics[kStepsMetric] = outcome.steps;
  // The device's caps changed the round: say how, for the server's records.
  if (outcome.stopped_early) res.metrics[kStoppedEarlyMetric] = int64_t{1};
  if (outcome.batch_size != static_cast<int64_t>(config.batch_size())) {
    res.metrics[kBatchSizeMetric] = outcome.batch_size;
  }
  for (size_t i = 0; i < hooks.size(); ++i) {
    SHOAL_RETURN_IF_ERROR(hooks[i]->AfterTraining(client_round, outcome, &states[i], &res));
  }
  // Frozen tensors (partial fine-tuning) are not sent: their change is
  // exactly zero, and the server counts them unchanged. Personal ones are
  // kept here instead.
  Parameters personal_state;
  if (!personal.empty()) {
    // As trained, from the model itself (start + update might round).
    const Parameters trained = model_->GetParameters();
    for (size_t i = 0; i < trained.size(); ++i) {
      if (std::find(personal.begin(), personal.end(), trained.name(i)) != personal.end()) {
        personal_state.Add(trained.name(i), trained.tensor(i).to(at::kCPU).clone());
      }
    }
  }
  if (!not_sent.empty()) res.update = Without(res.update, not_sent);
  // Compressed last, so that what the algorithms made of the update is what
  // is sent (and what top-k drops is kept for the next round).
  SHOAL_ASSIGN_OR_RETURN(const CompressionOptions compression,
                         Annotate(CompressionFromProto(config.compression()),
                                  "the round's compression"));
  Parameters residual_state;
  if (compression.kind != Compression::kNone) {
    std::map<std::string, at::Tensor> residuals = Residuals(algorithm_state_, res.update);
    SHOAL_RETURN_IF_ERROR(Compress(not_sent.empty() ? global : Without(global, not_sent),
                                   compression,
                                   MixSeed(MixSeed(trainer_.seed(), kCompressionSalt), round),
                                   &residuals, &res));
    for (const std::string& name : res.update.names()) {
      auto it = residuals.find(name);
      if (it != residuals.end()) residual_state.Add(name, it->second);
    }
  }
  for (size_t i = 0; i < hooks.size(); ++i) {
    Parameters& kept = algorithm_state_[config.client_algorithms(i).name()];
    kept = std::move(states[i]);
    if (kept.empty()) algorithm_state_.erase(config.client_algorithms(i).name());
  }
  if (residual_state.empty()) {
    algorithm_state_.erase(kCompressionResidualState);
  } else {
    algorithm_state_[kCompressionResidualState] = std::move(residual_state);
  }
  if (!personal_state.empty()) algorithm_state_[kPersonalState] = std::move(personal_state);
  res.metrics["fit_seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
  return res;
}

absl::StatusOr<EvaluateRes> LocalClient::Evaluate(const Parameters& global,
                                                  const v1::EvaluateConfig& config) {
  if (holdout_ == nullptr || holdout_->size() == 0) {
    return absl::FailedPreconditionError("this client has no held-out data");
  }
  SHOAL_RETURN_IF_ERROR(model_->SetParameters(PersonalModel(global)));
  const int64_t batch = config.batch_size() > 0 ? config.batch_size() : 128;
  SHOAL_ASSIGN_OR_RETURN(EvalOutcome outcome, trainer_.Evaluate(*model_, *holdout_, batch));
  // The pooled means go to the server, which derives the federated RMSE and
  // R² of all clients' held-out data from them (common/metrics.h).
  EvaluateRes res = ToEvaluateRes(outcome);
  res.metrics.insert(outcome.pooled.begin(), outcome.pooled.end());
  return res;
}

}  // namespace shoal::client
