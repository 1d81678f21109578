#include "strategies/registry.h"

#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "strategies/bulyan.h"
#include "strategies/fedadagrad.h"
#include "strategies/fedadam.h"
#include "strategies/fedavg.h"
#include "strategies/fedavgm.h"
#include "strategies/fedmedian.h"
#include "strategies/fednova.h"
#include "strategies/fedprox.h"
#include "strategies/fedtrimmedavg.h"
#include "strategies/fedyogi.h"
#include "strategies/krum.h"
#include "strategies/params.h"
#include "strategies/qfedavg.h"
#include "strategies/scaffold.h"

namespace shoal {
namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, StrategyFactory> factories ABSL_GUARDED_BY(mu);
};

// The built-in strategies, one per file; each file's factory validates its
// own parameters.
const std::pair<const char*, StrategyFactory> kBuiltins[] = {
    {"bulyan", MakeBulyan},
    {"fedadagrad", MakeFedAdagrad},
    {"fedadam", MakeFedAdam},
    {"fedavg", MakeFedAvg},
    {"fedavgm", MakeFedAvgM},
    {"fedmedian", MakeFedMedian},
    {"fednova", MakeFedNova},
    {"fedprox", MakeFedProx},
    {"fedtrimmedavg", MakeFedTrimmedAvg},
    {"fedyogi", MakeFedYogi},
    {"krum", MakeKrum},
    {"multikrum", MakeMultiKrum},
    {"qfedavg", MakeQFedAvg},
    {"scaffold", MakeScaffold},
};

Registry& GetRegistry() {
  static Registry* const registry = new Registry;  // never destroyed
  static const bool builtins = [] {
    absl::MutexLock lock(&registry->mu);
    for (const auto& [name, factory] : kBuiltins) registry->factories[name] = factory;
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
    const StrategyContext& context) {
  StrategyFactory factory;
  {
    Registry& r = GetRegistry();
    absl::MutexLock lock(&r.mu);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown strategy ", QuoteForMessage(name, 80), "; registered: ",
        absl::StrJoin(RegisteredStrategies(), ", ")));
  }
  return factory(params, context);
}

std::vector<std::string> RegisteredStrategies() {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.factories) names.push_back(name);
  return names;
}

}  // namespace shoal
