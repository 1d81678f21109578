// shoal/strategy.h: how the server turns client updates into the next model,
// and what clients do differently for a strategy.
//
// Strategy (strategies/strategy.h, the round's lifecycle in its opening
// comment): ConfigureFit / BeginAggregateFit -> FitAggregator::Accept per
// result, Finish(failures) -> the new global model; EvaluateGlobal. A
// Strategy is driven by one Coordinator thread; a FitAggregator's Accept is
// called under the collector's lock, one result at a time.
// FedAvg (and FedAvgOptions, ReadFedAvgOptions) is the base most custom
// strategies extend; WeightedSumAggregator folds each result at once.
// RegisterStrategy(name, factory): makes `name` available to config files
//   ("strategy": {"name": ...}); call before any run, from one thread.
//   AlreadyExists for a taken name. CreateStrategy(name, params, context)
//   builds one; InvalidArgument names the offending parameter
//   ("strategy.bogus"). StrategyParams reads typed, ranged parameters.
// The client half of a strategy: a ClientAlgorithm registered under a name
//   with RegisterClientAlgorithm, asked for in FitConfig.client_algorithms
//   (AddClientAlgorithm); every client process that trains for the strategy
//   must register it too.
//
// Example:
//   SHOAL_RETURN_IF_ERROR(shoal::RegisterStrategy("mine",
//       [](const nlohmann::json& params, const shoal::StrategyContext& context)
//           -> absl::StatusOr<std::unique_ptr<shoal::Strategy>> {
//         shoal::StrategyParams p("mine", params);
//         shoal::FedAvgOptions options;
//         SHOAL_RETURN_IF_ERROR(shoal::ReadFedAvgOptions(p, context, &options));
//         SHOAL_RETURN_IF_ERROR(p.Finish());
//         return std::make_unique<shoal::FedAvg>(options);
//       }));
#ifndef SHOAL_STRATEGY_H_
#define SHOAL_STRATEGY_H_

#include "client/client_algorithm.h"
#include "client/client_algorithm_registry.h"
#include "common/client_algorithms.h"
#include "common/parameters.h"
#include "strategies/aggregate.h"
#include "strategies/fedavg.h"
#include "strategies/params.h"
#include "strategies/registry.h"
#include "strategies/strategy.h"

namespace shoal {

using client::ClientAlgorithm;
using client::ClientAlgorithmParams;
using client::RegisterClientAlgorithm;
using client::RegisteredClientAlgorithms;
using client::TrainingStart;
using client::TrainingStep;

}  // namespace shoal

#endif  // SHOAL_STRATEGY_H_
