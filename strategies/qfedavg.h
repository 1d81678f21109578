// q-FedAvg (Li, Sanjabi, Beirami, Smith, "Fair Resource Allocation in
// Federated Learning", ICLR 2020): q-FFL's federated solver. Clients with a
// higher loss on the global model get more weight, which evens out accuracy
// across clients; q = 0 is FedAvg-like, larger q is fairer.
//
// Each sampled client reports F_k, the loss of the global model w on its
// training data before it trains (the strategy asks for the client half
// "qfedavg", client/algorithms/qfedavg.cc), and its update u_k = w_k - w.
// With L = 1 / qffl_learning_rate (the paper's Lipschitz estimate):
//   Delta_k = L F_k^q (w - w_k)
//   h_k     = q F_k^(q-1) L^2 ||u_k||^2 + L F_k^q
//   w'      = w - sum_k Delta_k / sum_k h_k
// as in the paper's Algorithm 3 and Flower's QFedAvg (which, unlike the
// paper, takes F_k from a server-side evaluation; Shoal uses each client's
// own loss). F_k gets 1e-10 added, as in both.
//
// It folds results as they arrive: sum_k L F_k^q u_k is a weighted sum and
// sum_k h_k a scalar. The server computes ||u_k||^2 from the update itself,
// so under secure aggregation the client would have to report h_k instead.
#ifndef SHOAL_STRATEGIES_QFEDAVG_H_
#define SHOAL_STRATEGIES_QFEDAVG_H_

#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "strategies/fedavg.h"
#include "strategies/registry.h"

namespace shoal {

// QFedAvgOptions. Defaults are Flower's: q = 0.2, qffl_learning_rate 0.1.
struct QFedAvgOptions {
  FedAvgOptions fedavg;
  double q = 0.2;                    // >= 0
  double qffl_learning_rate = 0.1;   // > 0; L = 1 / this
};

class QFedAvg : public FedAvg {
 public:
  explicit QFedAvg(QFedAvgOptions options);
  absl::string_view name() const override { return "qfedavg"; }
  bool AggregatesByMean() const override { return false; }
  // Its server step is linear in the updates: every compression composes.
  absl::Status CheckCompression(Compression) const override { return absl::OkStatus(); }
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

 private:
  double q_;
  double lipschitz_;
};

// MakeQFedAvg reads `q`, `qffl_learning_rate` and `fraction_evaluate`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeQFedAvg(const nlohmann::json& params,
                                                      const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_QFEDAVG_H_
