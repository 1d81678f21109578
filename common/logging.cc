#include "common/logging.h"

#include "absl/strings/str_cat.h"

namespace shoal {

absl::Status InitLogging(const std::string& process_name, const std::string& level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", level, "': use debug, info, warn or error"));
  }
  spdlog::set_level(parsed);
  spdlog::set_pattern(absl::StrCat("[%H:%M:%S.%e] [", process_name, "] %^%l%$ %v"));
  return absl::OkStatus();
}

}  // namespace shoal
