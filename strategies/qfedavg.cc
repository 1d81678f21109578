#include "strategies/qfedavg.h"

#include <ATen/ATen.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/client_algorithms.h"
#include "common/status.h"
#include "common/types.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {
namespace {

FedAvgOptions AskForInitialLoss(FedAvgOptions options) {
  // The client half, client/algorithms/qfedavg.cc, reports the initial loss.
  AddClientAlgorithm(&options.fit_config, kQFedAvgAlgorithm);
  return options;
}

absl::StatusOr<double> InitialLoss(const std::string& client_id, const FitRes& res) {
  auto it = res.metrics.find(kInitialLossMetric);
  const double loss = it == res.metrics.end() ? NAN : MetricAsDouble(it->second);
  if (!(loss >= 0) || !std::isfinite(loss)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "q-FedAvg needs the loss of the global model on the client's data: client '",
        client_id, "' sent no finite, non-negative metric '", kInitialLossMetric, "'"));
  }
  return loss;
}

// QffAggregator folds sum_k (L F_k^q) u_k through a WeightedSumAggregator
// and keeps H = sum_k h_k; Finish turns the weighted mean into the step
// sum_k (L F_k^q) u_k / H = mean * W / H, W the sum of weights.
class QffAggregator : public FitAggregator {
 public:
  QffAggregator(std::shared_ptr<const Parameters> global, double q, double lipschitz)
      : q_(q), lipschitz_(lipschitz),
        inner_(std::move(global),
               [this](const Parameters& g, const FlatLayout& layout, const at::Tensor& mean) {
                 const double scale = inner_.total_weight() / h_sum_;
                 return absl::StatusOr<Parameters>(layout.Apply(g, mean * scale));
               },
               [this](const FitRes&) { return pending_weight_; }) {}

  absl::Status Accept(const std::string& client_id, const FitRes& res) override {
    SHOAL_ASSIGN_OR_RETURN(double loss, InitialLoss(client_id, res));
    const double f = loss + 1e-10;
    const double norm = res.update.L2Norm();
    const double sq_norm = norm * norm;
    const double L = lipschitz_;
    const double h = q_ * std::pow(f, q_ - 1) * L * L * sq_norm + L * std::pow(f, q_);
    pending_weight_ = L * std::pow(f, q_);
    if (!std::isfinite(h) || !(h > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client '", client_id, "': q-FedAvg's h_k is ", h, " (loss ", loss, ")"));
    }
    SHOAL_RETURN_IF_ERROR(inner_.Accept(client_id, res));
    h_sum_ += h;
    return absl::OkStatus();
  }

  absl::StatusOr<Parameters> Finish(const std::vector<ClientFailure>& failures) override {
    return inner_.Finish(failures);
  }

 private:
  const double q_;
  const double lipschitz_;
  double pending_weight_ = 0;  // L F_k^q of the result being accepted
  double h_sum_ = 0;
  WeightedSumAggregator inner_;
};

}  // namespace

QFedAvg::QFedAvg(QFedAvgOptions options)
    : FedAvg(AskForInitialLoss(std::move(options.fedavg))), q_(options.q),
      lipschitz_(1 / options.qffl_learning_rate) {}

std::unique_ptr<FitAggregator> QFedAvg::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<QffAggregator>(std::move(global), q_, lipschitz_);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeQFedAvg(const nlohmann::json& params,
                                                      const StrategyContext& context) {
  QFedAvgOptions options;
  StrategyParams p("qfedavg", params);
  SHOAL_RETURN_IF_ERROR(p.Number("q", 0, 100, &options.q));
  SHOAL_RETURN_IF_ERROR(p.Number("qffl_learning_rate", 0, 1e6, &options.qffl_learning_rate,
                                 /*lo_open=*/true));
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options.fedavg));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<QFedAvg>(options);
}

}  // namespace shoal
