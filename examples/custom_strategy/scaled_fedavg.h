// ScaledFedAvg: FedAvg with a server learning rate, x <- x + eta * mean
// update. The worked example of docs/strategies.md.
#ifndef SHOAL_EXAMPLES_CUSTOM_STRATEGY_SCALED_FEDAVG_H_
#define SHOAL_EXAMPLES_CUSTOM_STRATEGY_SCALED_FEDAVG_H_

#include <memory>

#include "shoal/status.h"
#include "shoal/strategy.h"

class ScaledFedAvg : public shoal::FedAvg {
 public:
  ScaledFedAvg(shoal::FedAvgOptions options, double eta) : FedAvg(options), eta_(eta) {}
  absl::string_view name() const override { return "scaled_fedavg"; }
  std::unique_ptr<shoal::FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const shoal::Parameters> global) override;

 private:
  double eta_;
};

// RegisterScaledFedAvg makes "scaled_fedavg" available to config files, with
// parameters server_learning_rate (1.0, in (0, 10]) and fraction_evaluate.
absl::Status RegisterScaledFedAvg();

#endif  // SHOAL_EXAMPLES_CUSTOM_STRATEGY_SCALED_FEDAVG_H_
