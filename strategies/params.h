// StrategyParams reads a strategy's parameters from its JSON object in the
// experiment config, with types and ranges checked and unknown keys refused,
// so a typo or an out-of-range value stops the run before it starts.
#ifndef SHOAL_STRATEGIES_PARAMS_H_
#define SHOAL_STRATEGIES_PARAMS_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace shoal {

// Example:
//   StrategyParams p("fedprox", params);
//   double mu = 0.01;
//   SHOAL_RETURN_IF_ERROR(p.Number("proximal_mu", 0, 1e6, &mu));
//   SHOAL_RETURN_IF_ERROR(p.Finish());  // unknown keys are errors
class StrategyParams {
 public:
  // `section` is the config object the keys live in, for messages
  // ("strategy.mu").
  StrategyParams(std::string strategy, const nlohmann::json& params,
                 std::string section = "strategy")
      : strategy_(std::move(strategy)), params_(params), section_(std::move(section)) {}

  // Number reads `key` into `out` (left unchanged when absent); it must lie
  // in [lo, hi], or (lo, hi] / [lo, hi) when the bound is open.
  absl::Status Number(const std::string& key, double lo, double hi, double* out,
                      bool lo_open = false, bool hi_open = false);
  absl::Status Integer(const std::string& key, int64_t lo, int64_t hi, int64_t* out);
  absl::Status Bool(const std::string& key, bool* out);
  absl::Status String(const std::string& key, const std::vector<std::string>& choices,
                      std::string* out);
  // Finish refuses keys nobody read, listing the known ones.
  absl::Status Finish() const;

 private:
  std::string Name(const std::string& key) const { return section_ + "." + key; }

  std::string strategy_;
  const nlohmann::json& params_;
  std::string section_;
  std::set<std::string> known_;
};

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_PARAMS_H_
