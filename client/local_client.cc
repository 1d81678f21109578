#include "client/local_client.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client_algorithm_registry.h"
#include "client/dataset_evaluator.h"
#include "common/quote.h"
#include "common/status.h"

namespace shoal::client {

namespace {

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

}  // namespace

absl::StatusOr<FitRes> LocalClient::Fit(const Parameters& global,
                                        const v1::FitConfig& config, uint32_t round,
                                        const Parameters* aux) {
  const absl::Time start = absl::Now();
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
  for (size_t i = 0; i < hooks.size(); ++i) {
    SHOAL_RETURN_IF_ERROR(hooks[i]->AfterTraining(client_round, outcome, &states[i], &res));
  }
  for (size_t i = 0; i < hooks.size(); ++i) {
    Parameters& kept = algorithm_state_[config.client_algorithms(i).name()];
    kept = std::move(states[i]);
    if (kept.empty()) algorithm_state_.erase(config.client_algorithms(i).name());
  }
  res.metrics["fit_seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
  return res;
}

absl::StatusOr<EvaluateRes> LocalClient::Evaluate(const Parameters& global,
                                                  const v1::EvaluateConfig& config) {
  if (holdout_ == nullptr || holdout_->size() == 0) {
    return absl::FailedPreconditionError("this client has no held-out data");
  }
  SHOAL_RETURN_IF_ERROR(model_->SetParameters(global));
  const int64_t batch = config.batch_size() > 0 ? config.batch_size() : 128;
  SHOAL_ASSIGN_OR_RETURN(EvalOutcome outcome, trainer_.Evaluate(*model_, *holdout_, batch));
  // The pooled means go to the server, which derives the federated RMSE and
  // R² of all clients' held-out data from them (common/metrics.h).
  EvaluateRes res = ToEvaluateRes(outcome);
  res.metrics.insert(outcome.pooled.begin(), outcome.pooled.end());
  return res;
}

}  // namespace shoal::client
