// SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for
// Federated Learning", ICML 2020): control variates correct each client's
// drift away from the global direction, which helps on non-IID data.
//
// The server keeps a control variate c (zero at first) and sends it with
// every fit task as the auxiliary tensors (FitIns::aux). Each client corrects
// its gradients by c - c_i, keeps its own c_i, and returns its update
// Delta y_i and the change of its control variate Delta c_i (FitRes::aux; the
// client half "scaffold" does this: client/algorithms/scaffold.cc). The
// server then sets
//   x <- x + eta_g * (num_examples-weighted mean of Delta y_i)
//   c <- c + (|S| / N) * (mean of Delta c_i)
// with |S| the clients that answered and N the population. The paper's
// x-update is an unweighted mean; Shoal weighs it by num_examples like
// FedAvg, so the two agree on equal-sized clients.
//
// Both sums fold as results arrive: memory is two models plus c.
//
// State: c, kept across rounds by this object (checkpointing it with the
// server is issue 6's crash recovery). A client that restarts loses its c_i
// and starts again from zero, which SCAFFOLD tolerates (it is then a
// client that has not participated yet).
#ifndef SHOAL_STRATEGIES_SCAFFOLD_H_
#define SHOAL_STRATEGIES_SCAFFOLD_H_

#include <cstdint>
#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "strategies/fedavg.h"
#include "strategies/registry.h"

namespace shoal {

struct ScaffoldOptions {
  FedAvgOptions fedavg;
  // eta_g, the server (global) learning rate; the paper's default is 1.
  double server_learning_rate = 1.0;
  // N, the number of clients in the federation, for c's |S|/N factor. 0
  // (default): every client takes part in every round (|S|/N = 1).
  int64_t population = 0;
};

class Scaffold : public FedAvg {
 public:
  explicit Scaffold(ScaffoldOptions options);
  absl::string_view name() const override { return "scaffold"; }
  bool AggregatesByMean() const override { return false; }
  // Its server step is linear in the updates: every compression composes.
  absl::Status CheckCompression(Compression) const override { return absl::OkStatus(); }
  std::vector<FitInstruction> ConfigureFit(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& sampled_clients) override;
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;

  // The server control variate (null before the first round).
  std::shared_ptr<const Parameters> control() const { return control_; }
  // State: c, its tensors named after the model's.
  Parameters SaveState() const override;
  absl::Status LoadState(const Parameters& state) override;

 private:
  friend class ScaffoldAggregator;
  ScaffoldOptions options_;
  std::shared_ptr<const Parameters> control_;
};

// MakeScaffold reads `server_learning_rate`, `population` and
// `fraction_evaluate`.
absl::StatusOr<std::unique_ptr<Strategy>> MakeScaffold(const nlohmann::json& params,
                                                       const StrategyContext& context);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_SCAFFOLD_H_
