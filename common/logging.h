// Logging goes through spdlog (Debian's libspdlog-dev): leveled,
// thread-safe, and formatted with fmt, so Shoal does not grow its own logger.
#ifndef SHOAL_COMMON_LOGGING_H_
#define SHOAL_COMMON_LOGGING_H_

#include <string>

#include <spdlog/spdlog.h>

#include "absl/status/status.h"

namespace shoal {

// InitLogging names this process in every line ("server", "client-3") and
// sets the level: "debug", "info" (default), "warn" or "error".
// InvalidArgument for an unknown level.
absl::Status InitLogging(const std::string& process_name,
                         const std::string& level = "info");

}  // namespace shoal

#endif  // SHOAL_COMMON_LOGGING_H_
