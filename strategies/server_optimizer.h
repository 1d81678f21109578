// ServerOptimizer: the shared shape of strategies that treat the weighted
// mean of the clients' updates as a pseudo-gradient and take a stateful
// server-side step with it (FedAvgM, FedAdagrad, FedAdam, FedYogi). They stay
// weighted sums: results are folded in as they arrive.
#ifndef SHOAL_STRATEGIES_SERVER_OPTIMIZER_H_
#define SHOAL_STRATEGIES_SERVER_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "strategies/aggregate.h"
#include "strategies/fedavg.h"

namespace shoal {

// Subclasses keep their state (momentum, moments) as flat float64 tensors
// over the model's floating-point values, so one instance must drive the
// whole run. The aggregator BeginAggregateFit returns refers to this
// strategy: it must not outlive it. Rounds are finished in order (the
// Coordinator does); state advances only when a round's Finish succeeds.
class ServerOptimizer : public FedAvg {
 public:
  absl::StatusOr<Parameters> ApplyMeanUpdate(const Parameters& global,
                                             const FlatLayout& layout,
                                             const at::Tensor& mean_update) final;
  // The state tensors under their names ("momentum"; "m", "v"), once the
  // first step made them.
  Parameters SaveState() const final;
  absl::Status LoadState(const Parameters& state) final;

 protected:
  explicit ServerOptimizer(FedAvgOptions options) : FedAvg(std::move(options)) {}

  // StateSize is the number of values in the optimizer state, or -1 before
  // the first step; a model whose layout no longer matches is refused.
  virtual int64_t StateSize() const = 0;
  // Step advances the state with the flat float64 mean update and returns
  // the flat step to add to the global model.
  virtual at::Tensor Step(const at::Tensor& mean_update) = 0;
  // StateSlot is a member that holds state, undefined before the first
  // step: flat float64 over the model's floating-point values, or, when
  // `is_count`, a float64 [1] holding a finite count >= 0 (steps taken).
  struct StateSlot {
    std::string name;
    at::Tensor* tensor;
    bool is_count = false;
  };
  // StateTensors names the slots, in order, for SaveState / LoadState.
  virtual std::vector<StateSlot> StateTensors() = 0;
};

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_SERVER_OPTIMIZER_H_
