#include "common/logging.h"

#include <grpc/support/log.h>

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal {
namespace {

constexpr size_t kMaxGrpcLineBytes = 512;

// GrpcLogSites keeps one limiter per source line of gRPC that logs, so a
// flood from one (failed handshakes) does not silence the others. The
// number of sites is bounded by gRPC's code.
class GrpcLogSites {
 public:
  LogRateLimiter& For(const char* file, int line) {
    absl::MutexLock lock(&mu_);
    std::unique_ptr<LogRateLimiter>& limiter =
        sites_[absl::StrCat(file, ":", line)];
    if (limiter == nullptr) limiter = std::make_unique<LogRateLimiter>(2, 20);
    return *limiter;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<LogRateLimiter>> sites_
      ABSL_GUARDED_BY(mu_);
};

GrpcLogSites& Sites() {
  static auto* sites = new GrpcLogSites();
  return *sites;
}

void ForwardGrpcLog(gpr_log_func_args* args) {
  int64_t suppressed = 0;
  if (!Sites().For(args->file, args->line).Allow(&suppressed)) return;
  absl::string_view message(args->message != nullptr ? args->message : "");
  std::string text(message.substr(0, kMaxGrpcLineBytes));
  if (message.size() > kMaxGrpcLineBytes)
    absl::StrAppend(&text, "... (", message.size(), " bytes)");
  const spdlog::level::level_enum level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
      : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                : spdlog::level::debug;
  spdlog::log(level, "grpc: {} ({}:{}){}", text, args->file, args->line,
              SuppressedNote(suppressed));
}

std::atomic<bool> g_json{false};
absl::Mutex g_process_mu;
std::string* g_process ABSL_GUARDED_BY(g_process_mu) = new std::string("shoal");

std::string JsonLine(absl::Time time, absl::string_view level, absl::string_view process,
                     absl::string_view message) {
  nlohmann::json line = {
      {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone())},
      {"level", std::string(level)},
      {"process", std::string(process)},
      {"message", std::string(message)}};
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// JsonFormatter writes a log line as one JSON object (nlohmann-json does the
// escaping; invalid UTF-8 is replaced rather than thrown on).
class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string process) : process_(std::move(process)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    const std::string text =
        JsonLine(absl::FromChrono(msg.time), absl::string_view(level.data(), level.size()),
                 process_, absl::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(process_);
  }

 private:
  std::string process_;
};

void ApplyFormat(const std::string& process_name) {
  {
    absl::MutexLock lock(&g_process_mu);
    *g_process = process_name;
  }
  if (g_json.load()) {
    spdlog::set_formatter(std::make_unique<JsonFormatter>(process_name));
  } else {
    spdlog::set_pattern(absl::StrCat("[%H:%M:%S.%e] [", process_name, "] %^%l%$ %v"));
  }
}

}  // namespace

absl::Status SetLogFormat(const std::string& format, const std::string& process_name) {
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log format '", format, "': use text or json"));
  }
  g_json.store(format == "json");
  ApplyFormat(process_name);
  return absl::OkStatus();
}

bool JsonLogs() { return g_json.load(); }

std::string JsonLogLine(absl::string_view level, absl::string_view message) {
  absl::MutexLock lock(&g_process_mu);
  return JsonLine(absl::Now(), level, *g_process, message);
}

absl::Status InitLogging(const std::string& process_name, const std::string& level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", level, "': use debug, info, warn or error"));
  }
  spdlog::set_level(parsed);
  ApplyFormat(process_name);
  RouteGrpcLogs();
  return absl::OkStatus();
}

void RouteGrpcLogs() { gpr_set_log_function(&ForwardGrpcLog); }

LogRateLimiter::LogRateLimiter(double lines_per_second, double burst,
                               std::function<absl::Time()> now)
    : per_second_(lines_per_second),
      burst_(burst),
      now_(std::move(now)),
      tokens_(burst),
      refilled_(now_()) {}

bool LogRateLimiter::Allow(int64_t* suppressed) {
  // The clock is read under the lock, so refilled_ never moves backwards.
  absl::MutexLock lock(&mu_);
  const absl::Time now = now_();
  tokens_ = std::min(
      burst_, tokens_ + per_second_ * absl::ToDoubleSeconds(now - refilled_));
  refilled_ = now;
  if (tokens_ < 1) {
    ++suppressed_;
    return false;
  }
  tokens_ -= 1;
  *suppressed = std::exchange(suppressed_, 0);
  return true;
}

std::string SuppressedNote(int64_t suppressed) {
  return suppressed == 0
             ? std::string()
             : absl::StrCat(" (", suppressed, " similar lines suppressed)");
}

}  // namespace shoal
