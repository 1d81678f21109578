// Logging goes through spdlog (Debian's libspdlog-dev): leveled,
// thread-safe, and formatted with fmt, so Shoal does not grow its own logger.
// gRPC's own log lines are forwarded to it too, rate-limited (RouteGrpcLogs),
// because a peer can cause them without ever authenticating.
#ifndef SHOAL_COMMON_LOGGING_H_
#define SHOAL_COMMON_LOGGING_H_

#include <spdlog/spdlog.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace shoal {

// InitLogging names this process in every line ("server", "client-3") and
// sets the level: "debug", "info" (default), "warn" or "error". It also
// routes gRPC's log lines through spdlog (RouteGrpcLogs). Lines are in the
// format SetLogFormat chose. InvalidArgument for an unknown level.
absl::Status InitLogging(const std::string& process_name,
                         const std::string& level = "info");

// SetLogFormat chooses how every line is written from now on: "text"
// (default: "[12:00:00.000] [server] info message") or "json", one object
// per line for log collectors:
//   {"time":"2026-12-07T12:00:00.000Z","level":"info","process":"server","message":"..."}
// (UTC, RFC 3339; bytes that are not UTF-8 are replaced, so every line
// parses). `process_name` names the process until InitLogging names it.
// InvalidArgument for another format.
absl::Status SetLogFormat(const std::string& format, const std::string& process_name);
bool JsonLogs();
// JsonLogLine is one line as SetLogFormat's "json" writes it (with its
// newline), for output that must appear whatever the level (a run's
// summary, a command's error).
std::string JsonLogLine(absl::string_view level, absl::string_view message);

// RouteGrpcLogs makes gRPC log through spdlog ("grpc: ..." lines), at most
// a burst of 20 lines and then 2 a second per source line of gRPC, each cut
// to 512 bytes; the first line let through after a quiet spell says how many
// were dropped. Without it each failed TLS handshake, which anyone who can
// reach the port can cause, writes a line to stderr. Idempotent.
void RouteGrpcLogs();

// LogRateLimiter: a token bucket for log lines a peer can cause, so a
// flood of bad calls costs a few lines rather than the disk. Thread-safe.
//
// Example:
//   int64_t dropped = 0;
//   if (limiter.Allow(&dropped)) spdlog::warn("refused: {}{}", why,
//   Dropped(dropped));
class LogRateLimiter {
 public:
  LogRateLimiter(
      double lines_per_second, double burst,
      std::function<absl::Time()> now = [] { return absl::Now(); });

  // Allow returns whether a line may be written now. When it may, and lines
  // were refused since the last one allowed, `*suppressed` gets how many
  // (else 0).
  bool Allow(int64_t* suppressed);

 private:
  const double per_second_;
  const double burst_;
  const std::function<absl::Time()> now_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time refilled_ ABSL_GUARDED_BY(mu_);
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// SuppressedNote returns "" for 0, else " (N similar lines suppressed)".
std::string SuppressedNote(int64_t suppressed);

}  // namespace shoal

#endif  // SHOAL_COMMON_LOGGING_H_
