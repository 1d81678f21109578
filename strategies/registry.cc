#include "strategies/registry.h"

#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "strategies/fedavg.h"

namespace shoal {
namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, StrategyFactory> factories ABSL_GUARDED_BY(mu);
};

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAvg(const nlohmann::json& params,
                                                     const v1::FitConfig& fit) {
  FedAvgOptions options;
  options.fit_config = fit;
  for (const auto& [key, value] : params.items()) {
    if (key != "fraction_evaluate") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown parameter 'strategy.", key, "' for strategy 'fedavg' (known: fraction_evaluate)"));
    }
    if (!value.is_number() || value.get<double>() < 0 || value.get<double>() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'strategy.fraction_evaluate' must be a number in [0, 1], got ", value.dump()));
    }
    options.fraction_evaluate = value.get<double>();
  }
  return std::make_unique<FedAvg>(options);
}

Registry& GetRegistry() {
  static Registry* const registry = new Registry;  // never destroyed
  static const bool builtins = [] {
    absl::MutexLock lock(&registry->mu);
    registry->factories["fedavg"] = MakeFedAvg;
    return true;
  }();
  (void)builtins;
  return *registry;
}

}  // namespace

absl::Status RegisterStrategy(const std::string& name, StrategyFactory factory) {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  if (!r.factories.emplace(name, std::move(factory)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a strategy named '", name, "' is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Strategy>> CreateStrategy(
    const std::string& name, const nlohmann::json& params,
    const v1::FitConfig& fit_config) {
  StrategyFactory factory;
  {
    Registry& r = GetRegistry();
    absl::MutexLock lock(&r.mu);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown strategy '", name, "'; registered: ",
        absl::StrJoin(RegisteredStrategies(), ", ")));
  }
  return factory(params, fit_config);
}

std::vector<std::string> RegisteredStrategies() {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.factories) names.push_back(name);
  return names;
}

}  // namespace shoal
