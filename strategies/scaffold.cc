#include "strategies/scaffold.h"

#include <ATen/ATen.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/client_algorithms.h"
#include "common/status.h"
#include "common/types.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {
namespace {

FedAvgOptions WithScaffold(FedAvgOptions options) {
  // The client half, client/algorithms/scaffold.cc, keeps c_i.
  AddClientAlgorithm(&options.fit_config, kScaffoldAlgorithm);
  return options;
}

}  // namespace

// ScaffoldAggregator folds the updates (num_examples-weighted) and the
// control-variate changes (unweighted) side by side. The strategy's c
// advances only when Finish succeeds.
class ScaffoldAggregator : public FitAggregator {
 public:
  ScaffoldAggregator(Scaffold* strategy, std::shared_ptr<const Parameters> global)
      : strategy_(strategy),
        updates_(std::move(global),
                 [this](const Parameters& g, const FlatLayout& layout, const at::Tensor& mean) {
                   return absl::StatusOr<Parameters>(layout.Apply(
                       g, mean * strategy_->options_.server_learning_rate));
                 }),
        controls_(strategy->control_,
                  [this](const Parameters& c, const FlatLayout& layout, const at::Tensor& mean) {
                    const int64_t n = strategy_->options_.population;
                    const double share =
                        n > 0 ? std::min(1.0, static_cast<double>(accepted_) / n) : 1.0;
                    return absl::StatusOr<Parameters>(layout.Apply(c, mean * share));
                  },
                  [](const FitRes&) { return 1.0; }) {}

  absl::Status Accept(const std::string& client_id, const FitRes& res) override {
    if (res.aux.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SCAFFOLD needs the client's control-variate change: client '", client_id,
          "' returned no auxiliary tensors"));
    }
    FitRes delta_c;
    delta_c.update = res.aux;
    delta_c.num_examples = 1;
    // Folding the update first and the control second could leave the two
    // out of step if the second failed; both see identical layouts (the
    // Coordinator checked them), so only the weight check can refuse, and
    // it refuses before anything is folded.
    SHOAL_RETURN_IF_ERROR(updates_.Accept(client_id, res));
    SHOAL_RETURN_IF_ERROR(controls_.Accept(client_id, delta_c));
    ++accepted_;
    return absl::OkStatus();
  }

  absl::StatusOr<Parameters> Finish(const std::vector<ClientFailure>& failures) override {
    SHOAL_ASSIGN_OR_RETURN(Parameters next, updates_.Finish(failures));
    SHOAL_ASSIGN_OR_RETURN(Parameters control, controls_.Finish(failures));
    strategy_->control_ = std::make_shared<const Parameters>(std::move(control));
    return next;
  }

 private:
  Scaffold* const strategy_;
  WeightedSumAggregator updates_;
  WeightedSumAggregator controls_;
  int64_t accepted_ = 0;
};

Scaffold::Scaffold(ScaffoldOptions options)
    : FedAvg(WithScaffold(options.fedavg)), options_(std::move(options)) {}

std::vector<FitInstruction> Scaffold::ConfigureFit(
    uint32_t round, const Parameters& global,
    const std::vector<std::string>& sampled_clients) {
  if (control_ == nullptr || !global.CheckCompatible(*control_).ok()) {
    auto zero = std::make_shared<Parameters>();
    for (size_t i = 0; i < global.size(); ++i) {
      zero->Add(global.name(i), at::zeros_like(global.tensor(i)));
    }
    control_ = std::move(zero);
  }
  std::vector<FitInstruction> out = FedAvg::ConfigureFit(round, global, sampled_clients);
  for (FitInstruction& ins : out) ins.aux = control_;
  return out;
}

Parameters Scaffold::SaveState() const {
  return control_ == nullptr ? Parameters{} : control_->Clone();
}

absl::Status Scaffold::LoadState(const Parameters& state) {
  SHOAL_RETURN_IF_ERROR(Annotate(state.CheckFinite(), "scaffold state"));
  // The layout is checked against the model at the next ConfigureFit, which
  // starts again from zero if the model does not match.
  control_ = state.empty() ? nullptr : std::make_shared<const Parameters>(state.Clone());
  return absl::OkStatus();
}

std::unique_ptr<FitAggregator> Scaffold::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<ScaffoldAggregator>(this, std::move(global));
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeScaffold(const nlohmann::json& params,
                                                       const StrategyContext& context) {
  ScaffoldOptions options;
  StrategyParams p("scaffold", params);
  SHOAL_RETURN_IF_ERROR(p.Number("server_learning_rate", 0, 1e3,
                                 &options.server_learning_rate, /*lo_open=*/true));
  SHOAL_RETURN_IF_ERROR(p.Integer("population", 0, int64_t{1} << 40, &options.population));
  if (options.population > 0 && options.population < context.min_fit_clients) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.population = ", options.population,
        " is smaller than min_fit_clients = ", context.min_fit_clients));
  }
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options.fedavg));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  // Option II estimates c_i from the distance travelled in K steps of size
  // lr; momentum makes the steps longer than lr and the estimate diverges
  // (measured: train loss 1.6, 4.3, 17.6 over three rounds at 0.9).
  if (context.fit_config.momentum() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scaffold needs plain SGD on the clients: its control-variate update assumes steps of "
        "exactly the learning rate; set fit.momentum to 0 (it is ",
        context.fit_config.momentum(), ")"));
  }
  return std::make_unique<Scaffold>(options);
}

}  // namespace shoal
