#include "strategies/fednova.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/types.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {
namespace {

absl::StatusOr<int64_t> Steps(const std::string& client_id, const FitRes& res) {
  auto it = res.metrics.find(kStepsMetric);
  if (it == res.metrics.end() || !std::holds_alternative<int64_t>(it->second) ||
      std::get<int64_t>(it->second) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FedNova needs the client's local step count: client '", client_id,
        "' sent no positive integer metric '", kStepsMetric, "'"));
  }
  return std::get<int64_t>(it->second);
}

// NovaAggregator folds sum_i (n_i / a_i) update_i through a
// WeightedSumAggregator and keeps N = sum n_i and A = sum n_i a_i, so that
// Finish can rescale the weighted mean into tau_eff * sum_i p_i d_i.
class NovaAggregator : public FitAggregator {
 public:
  NovaAggregator(std::shared_ptr<const Parameters> global, double momentum)
      : momentum_(momentum),
        inner_(std::move(global),
               [this](const Parameters& g, const FlatLayout& layout, const at::Tensor& mean) {
                 // mean = S / W with S = sum (n_i/a_i) u_i and W = sum n_i/a_i;
                 // the step is (A / N) * S / N = mean * W * A / N^2.
                 const double scale = inner_.total_weight() * a_sum_ / (n_sum_ * n_sum_);
                 return absl::StatusOr<Parameters>(layout.Apply(g, mean * scale));
               },
               [this](const FitRes& res) { return pending_weight_; }) {}

  absl::Status Accept(const std::string& client_id, const FitRes& res) override {
    SHOAL_ASSIGN_OR_RETURN(int64_t steps, Steps(client_id, res));
    const double a = EffectiveSteps(steps, momentum_);
    const double n = static_cast<double>(res.num_examples);
    pending_weight_ = n / a;
    SHOAL_RETURN_IF_ERROR(inner_.Accept(client_id, res));
    n_sum_ += n;
    a_sum_ += n * a;
    return absl::OkStatus();
  }

  absl::StatusOr<Parameters> Finish(const std::vector<ClientFailure>& failures) override {
    return inner_.Finish(failures);
  }

 private:
  const double momentum_;
  double pending_weight_ = 0;  // n_i / a_i of the result being accepted
  double n_sum_ = 0;
  double a_sum_ = 0;
  WeightedSumAggregator inner_;
};

}  // namespace

double EffectiveSteps(int64_t steps, double momentum) {
  const double tau = static_cast<double>(steps);
  if (momentum <= 0) return tau;
  return (tau - momentum * (1 - std::pow(momentum, tau)) / (1 - momentum)) / (1 - momentum);
}

std::unique_ptr<FitAggregator> FedNova::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<NovaAggregator>(std::move(global), momentum_);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedNova(const nlohmann::json& params,
                                                      const StrategyContext& context) {
  FedAvgOptions options;
  StrategyParams p("fednova", params);
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedNova>(options);
}

}  // namespace shoal
