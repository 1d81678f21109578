#include "l2_fedavg.h"

#include <ATen/ATen.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "shoal/status.h"
#include "shoal/strategy.h"


namespace {

constexpr char kName[] = "l2_fedavg";  // the strategy and its client half

// The client half: one instance per round on every client.
class L2Regularizer : public shoal::client::ClientAlgorithm {
 public:
  explicit L2Regularizer(double lambda) : lambda_(lambda) {}
  at::Tensor LossTerm(const shoal::client::TrainingStep& step) override {
    at::Tensor sum = at::zeros({}, step.trainable[0].options());
    for (const at::Tensor& w : step.trainable) sum = sum + w.pow(2).sum();
    return (lambda_ / 2) * sum;
  }

 private:
  const double lambda_;
};

// The server half: FedAvg, whose fit config names the client half.
class L2FedAvg : public shoal::FedAvg {
 public:
  using FedAvg::FedAvg;
  absl::string_view name() const override { return kName; }
};

}  // namespace

absl::Status RegisterL2FedAvg() {
  SHOAL_RETURN_IF_ERROR(shoal::RegisterStrategy(
      kName, [](const nlohmann::json& params, const shoal::StrategyContext& context)
                 -> absl::StatusOr<std::unique_ptr<shoal::Strategy>> {
        shoal::StrategyParams p(kName, params);
        shoal::FedAvgOptions options;
        SHOAL_RETURN_IF_ERROR(shoal::ReadFedAvgOptions(p, context, &options));
        double lambda = 0.001;
        SHOAL_RETURN_IF_ERROR(p.Number("lambda", 0, 10, &lambda));
        SHOAL_RETURN_IF_ERROR(p.Finish());
        // The server half asks every client of every round for the client half.
        (*shoal::AddClientAlgorithm(&options.fit_config, kName)->mutable_params())["lambda"]
            .set_double_value(lambda);
        return std::make_unique<L2FedAvg>(options);
      }));
  return shoal::client::RegisterClientAlgorithm(
      kName, [](shoal::client::ClientAlgorithmParams& p)
                 -> absl::StatusOr<std::unique_ptr<shoal::client::ClientAlgorithm>> {
        double lambda = 0;
        SHOAL_RETURN_IF_ERROR(p.Number("lambda", 0, 10, &lambda));
        return std::make_unique<L2Regularizer>(lambda);
      });
}
