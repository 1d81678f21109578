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

// StrategyFactory builds a strategy from its JSON parameters (the
// "strategy" object of the experiment config, minus "name") and the fit
// config the experiment asks for. It must reject unknown or out-of-range
// parameters with InvalidArgument naming them.
using StrategyFactory = std::function<absl::StatusOr<std::unique_ptr<Strategy>>(
    const nlohmann::json& params, const v1::FitConfig& fit_config)>;

// RegisterStrategy adds a factory under `name`; AlreadyExists if taken.
// Thread-safe.
absl::Status RegisterStrategy(const std::string& name, StrategyFactory factory);

// CreateStrategy builds the strategy registered as `name`. InvalidArgument
// listing the registered names when `name` is unknown.
absl::StatusOr<std::unique_ptr<Strategy>> CreateStrategy(
    const std::string& name, const nlohmann::json& params,
    const v1::FitConfig& fit_config);

// RegisteredStrategies lists the names, sorted.
std::vector<std::string> RegisteredStrategies();

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_REGISTRY_H_
