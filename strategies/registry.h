// StrategyRegistry: strategies chosen by name from a config file.
#ifndef SHOAL_STRATEGIES_REGISTRY_H_
#define SHOAL_STRATEGIES_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "strategies/strategy.h"

namespace shoal {

// StrategyContext: what the experiment tells a strategy besides its own
// parameters.
struct StrategyContext {
  // The fit config the experiment asks for (a strategy may add to `extra`).
  v1::FitConfig fit_config;
  // The fewest results a round aggregates (min_fit_clients): strategies whose
  // parameters depend on the cohort (Krum's f) check them against it.
  uint32_t min_fit_clients = 1;
  uint64_t seed = 0;
};

// StrategyFactory builds a strategy from its JSON parameters (the
// "strategy" object of the experiment config, minus "name"). It must reject
// unknown or out-of-range parameters with InvalidArgument naming them
// (strategies/params.h does the bookkeeping).
using StrategyFactory = std::function<absl::StatusOr<std::unique_ptr<Strategy>>(
    const nlohmann::json& params, const StrategyContext& context)>;

// RegisterStrategy adds a factory under `name`; AlreadyExists if taken.
// Thread-safe.
absl::Status RegisterStrategy(const std::string& name, StrategyFactory factory);

// CreateStrategy builds the strategy registered as `name`. InvalidArgument
// listing the registered names when `name` is unknown.
absl::StatusOr<std::unique_ptr<Strategy>> CreateStrategy(
    const std::string& name, const nlohmann::json& params,
    const StrategyContext& context);

// RegisteredStrategies lists the names, sorted.
std::vector<std::string> RegisteredStrategies();

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_REGISTRY_H_
