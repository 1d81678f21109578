// StrategyParams reads a strategy's parameters from its JSON object in the
// experiment config, with types and ranges checked and unknown keys refused,
// so a typo or an out-of-range value stops the run before it starts. It is
// JsonFields (common/json_fields.h) with errors that name the strategy.
#ifndef SHOAL_STRATEGIES_PARAMS_H_
#define SHOAL_STRATEGIES_PARAMS_H_

#include <nlohmann/json.hpp>
#include <string>

#include "common/json_fields.h"

namespace shoal {

// Example:
//   StrategyParams p("fedprox", params);
//   double mu = 0.01;
//   SHOAL_RETURN_IF_ERROR(p.Number("proximal_mu", 0, 1e6, &mu));
//   SHOAL_RETURN_IF_ERROR(p.Finish());  // unknown keys are errors
class StrategyParams : public JsonFields {
 public:
  // `section` is the config object the keys live in, for messages
  // ("strategy.mu"). `params` must outlive the reader.
  StrategyParams(const std::string& strategy, const nlohmann::json& params,
                 std::string section = "strategy")
      : JsonFields(params, std::move(section), ContextFor(strategy)) {}

 private:
  static Context ContextFor(const std::string& strategy) {
    Context context;
    context.suffix = " for strategy '" + strategy + "'";
    context.noun = "parameter";
    return context;
  }
};

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_PARAMS_H_
