#include "strategies/params.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/quote.h"

namespace shoal {

absl::Status StrategyParams::Number(const std::string& key, double lo, double hi,
                                    double* out, bool lo_open, bool hi_open) {
  known_.insert(key);
  if (!params_.contains(key)) return absl::OkStatus();
  const nlohmann::json& v = params_.at(key);
  if (!v.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Name(key), "' must be a number, got ", JsonForMessage(v)));
  }
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo) || (hi_open && d == hi)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", Name(key), "' = ", d, " is out of range ", lo_open ? "(" : "[", lo, ", ", hi,
        hi_open ? ")" : "]", " for strategy '", strategy_, "'"));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status StrategyParams::Integer(const std::string& key, int64_t lo, int64_t hi,
                                     int64_t* out) {
  known_.insert(key);
  if (!params_.contains(key)) return absl::OkStatus();
  const nlohmann::json& v = params_.at(key);
  if (!v.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Name(key), "' must be an integer, got ", JsonForMessage(v)));
  }
  // An unsigned JSON integer above INT64_MAX would wrap in get<int64_t>();
  // it is out of every range, and the message names it as written.
  const bool too_large = v.is_number_unsigned() &&
                         v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
  const int64_t i = too_large ? 0 : v.get<int64_t>();
  if (too_large || i < lo || i > hi) {
    return absl::InvalidArgumentError(absl::StrCat("'", Name(key), "' = ", JsonForMessage(v),
                                                   " is out of range [", lo, ", ", hi,
                                                   "] for strategy '", strategy_, "'"));
  }
  *out = i;
  return absl::OkStatus();
}

absl::Status StrategyParams::Bool(const std::string& key, bool* out) {
  known_.insert(key);
  if (!params_.contains(key)) return absl::OkStatus();
  if (!params_.at(key).is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat("'", Name(key), "' must be true or false"));
  }
  *out = params_.at(key).get<bool>();
  return absl::OkStatus();
}

absl::Status StrategyParams::String(const std::string& key,
                                    const std::vector<std::string>& choices,
                                    std::string* out) {
  known_.insert(key);
  if (!params_.contains(key)) return absl::OkStatus();
  const nlohmann::json& v = params_.at(key);
  if (!v.is_string() ||
      std::find(choices.begin(), choices.end(), v.get<std::string>()) == choices.end()) {
    return absl::InvalidArgumentError(absl::StrCat("'", Name(key), "' must be one of ",
                                                   absl::StrJoin(choices, ", "), ", got ",
                                                   JsonForMessage(v)));
  }
  *out = v.get<std::string>();
  return absl::OkStatus();
}

absl::Status StrategyParams::Finish() const {
  if (!params_.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("strategy '", strategy_,
                                                   "': parameters must be an object"));
  }
  for (const auto& [key, value] : params_.items()) {
    if (known_.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown parameter ", QuoteForMessage(Name(key), 80), " for strategy '", strategy_, "'",
          known_.empty() ? std::string(" (it takes none)")
                         : absl::StrCat(" (known: ", absl::StrJoin(known_, ", "), ")")));
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal
