#include "strategies/registry.h"

#include <nlohmann/json.hpp>

#include "common/named_registry.h"
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

NamedRegistry<StrategyFactory>& GetRegistry() {
  // The built-in strategies, one per file; each file's factory validates its
  // own parameters.
  static auto* const registry = new NamedRegistry<StrategyFactory>(  // never destroyed
      "strategy", {
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
                  });
  return *registry;
}

}  // namespace

absl::Status RegisterStrategy(const std::string& name, StrategyFactory factory) {
  return GetRegistry().Register(name, std::move(factory));
}

absl::StatusOr<std::unique_ptr<Strategy>> CreateStrategy(
    const std::string& name, const nlohmann::json& params,
    const StrategyContext& context) {
  SHOAL_ASSIGN_OR_RETURN(StrategyFactory factory, GetRegistry().Find(name));
  return factory(params, context);
}

std::vector<std::string> RegisteredStrategies() { return GetRegistry().Names(); }

}  // namespace shoal
