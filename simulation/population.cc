#include "simulation/population.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status.h"

namespace shoal::simulation {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kMaxSigma = 10;

// Each synthetic profile draws from its own stream of the client's key, so
// changing, say, the speed distribution leaves availability unchanged.
constexpr uint64_t kSpeedStream = 1;
constexpr uint64_t kPhaseStream = 2;
constexpr uint64_t kRoundStream = 3;
constexpr uint64_t kDownlinkStream = 4;
constexpr uint64_t kUplinkStream = 5;

// UnitOpen maps a hash to (0, 1) the way UniformOpen maps an Rng output:
// drawing a whole mt19937_64 state for one number per (client, round) would
// cost 2.5 KB of seeding per call.
double UnitOpen(uint64_t hash) {
  return (static_cast<double>(hash >> 11) + 0.5) * 0x1.0p-53;
}

bool IsFinite(double x) { return std::isfinite(x); }

absl::Status FieldError(absl::string_view name, absl::string_view field,
                        absl::string_view requirement, double got) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, ".", field, " must be ", requirement, ", got ", got));
}

// WindowSeparator is the '-' between start and end in "start-end": not a
// leading sign and not an exponent's sign ("1e-3-5"). npos if none.
size_t WindowSeparator(absl::string_view token) {
  for (size_t i = 1; i < token.size(); ++i) {
    if (token[i] == '-' && token[i - 1] != 'e' && token[i - 1] != 'E') return i;
  }
  return absl::string_view::npos;
}

}  // namespace

// ---------------------------------------------------------------- Distribution

Distribution Distribution::Constant(double value) {
  Distribution d;
  d.kind = Kind::kConstant;
  d.value = value;
  return d;
}

Distribution Distribution::Uniform(double min, double max) {
  Distribution d;
  d.kind = Kind::kUniform;
  d.min = min;
  d.max = max;
  return d;
}

Distribution Distribution::LogNormal(double median, double sigma) {
  Distribution d;
  d.kind = Kind::kLogNormal;
  d.median = median;
  d.sigma = sigma;
  return d;
}

absl::Status Distribution::Validate(absl::string_view name) const {
  switch (kind) {
    case Kind::kConstant:
      if (!(IsFinite(value) && value > 0)) {
        return FieldError(name, "value", "finite and > 0", value);
      }
      break;
    case Kind::kUniform:
      if (!(IsFinite(min) && min > 0)) {
        return FieldError(name, "min", "finite and > 0", min);
      }
      if (!(IsFinite(max) && max >= min)) {
        return FieldError(name, "max",
                          absl::StrCat("finite and >= min (", min, ")"), max);
      }
      break;
    case Kind::kLogNormal:
      if (!(IsFinite(median) && median > 0)) {
        return FieldError(name, "median", "finite and > 0", median);
      }
      if (!(sigma >= 0 && sigma <= kMaxSigma)) {
        return FieldError(name, "sigma",
                          absl::StrCat("in [0, ", kMaxSigma, "]"), sigma);
      }
      break;
  }
  return absl::OkStatus();
}

double Distribution::Draw(Rng& rng) const {
  switch (kind) {
    case Kind::kConstant:
      return value;
    case Kind::kUniform:
      return min + (max - min) * UniformOpen(rng);
    case Kind::kLogNormal: {
      // A 12-sigma normal draw times sigma 10 can leave double's range;
      // clamping keeps the promise of a finite, positive value.
      const double x = median * std::exp(sigma * StandardNormal(rng));
      return std::clamp(x, std::numeric_limits<double>::min(),
                        std::numeric_limits<double>::max());
    }
  }
  return value;
}

absl::StatusOr<Distribution::Kind> ParseDistributionKind(
    absl::string_view name) {
  if (name == "constant") return Distribution::Kind::kConstant;
  if (name == "uniform") return Distribution::Kind::kUniform;
  if (name == "lognormal") return Distribution::Kind::kLogNormal;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown distribution '", name,
                   "' (known: constant, uniform, lognormal)"));
}

std::string DistributionKindName(Distribution::Kind kind) {
  switch (kind) {
    case Distribution::Kind::kConstant:
      return "constant";
    case Distribution::Kind::kUniform:
      return "uniform";
    case Distribution::Kind::kLogNormal:
      return "lognormal";
  }
  return "unknown";
}

// ---------------------------------------------------------------- Availability

absl::Status AvailabilityOptions::Validate() const {
  switch (kind) {
    case Kind::kAlways:
      break;
    case Kind::kRandom:
      if (!(probability > 0 && probability <= 1)) {
        return FieldError("availability", "probability", "in (0, 1]",
                          probability);
      }
      break;
    case Kind::kDiurnal:
      if (!(IsFinite(period_s) && period_s > 0)) {
        return FieldError("availability", "period_s", "finite and > 0",
                          period_s);
      }
      if (!(online_fraction > 0 && online_fraction <= 1)) {
        return FieldError("availability", "online_fraction", "in (0, 1]",
                          online_fraction);
      }
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<AvailabilityOptions::Kind> ParseAvailabilityKind(
    absl::string_view name) {
  if (name == "always") return AvailabilityOptions::Kind::kAlways;
  if (name == "random") return AvailabilityOptions::Kind::kRandom;
  if (name == "diurnal") return AvailabilityOptions::Kind::kDiurnal;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown availability '", name, "' (known: always, random, diurnal)"));
}

std::string AvailabilityKindName(AvailabilityOptions::Kind kind) {
  switch (kind) {
    case AvailabilityOptions::Kind::kAlways:
      return "always";
    case AvailabilityOptions::Kind::kRandom:
      return "random";
    case AvailabilityOptions::Kind::kDiurnal:
      return "diurnal";
  }
  return "unknown";
}

absl::Status PopulationOptions::Validate() const {
  if (trace_path.empty() && num_clients == 0) {
    return absl::InvalidArgumentError("num_clients must be >= 1, got 0");
  }
  SHOAL_RETURN_IF_ERROR(speed.Validate("speed"));
  if (downlink_mbps) SHOAL_RETURN_IF_ERROR(downlink_mbps->Validate("downlink_mbps"));
  if (uplink_mbps) SHOAL_RETURN_IF_ERROR(uplink_mbps->Validate("uplink_mbps"));
  SHOAL_RETURN_IF_ERROR(availability.Validate());
  if (!(IsFinite(trace_period_s) && trace_period_s >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trace_period_s must be finite and >= 0, got ", trace_period_s));
  }
  if (trace_period_s > 0 && trace_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trace_period_s is ", trace_period_s, " but trace_path is empty"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- Population

Population::Population(const PopulationOptions& options)
    : size_(options.num_clients),
      seed_(options.seed),
      speed_(options.speed),
      downlink_(options.downlink_mbps),
      uplink_(options.uplink_mbps),
      availability_(options.availability),
      trace_period_(options.trace_period_s) {}

absl::StatusOr<Population> Population::Create(
    const PopulationOptions& options) {
  SHOAL_RETURN_IF_ERROR(options.Validate());
  Population population(options);
  if (!options.trace_path.empty()) {
    SHOAL_ASSIGN_OR_RETURN(
        population.trace_,
        LoadTrace(options.trace_path, options.trace_period_s));
    population.has_trace_ = true;
    population.size_ = population.trace_.speeds.size();
  }
  return population;
}

absl::StatusOr<Population::Trace> Population::LoadTrace(const std::string& path,
                                                        double period) {
  SHOAL_ASSIGN_OR_RETURN(
      const std::string text,
      Annotate(ReadFile(path, kMaxTraceBytes), "trace file"));
  Trace trace;
  uint64_t line_number = 0;
  auto error = [&](const auto&... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", line_number, ": ", parts...));
  };
  bool seen_header = false;
  bool links = false;  // the trace gives each client's link speeds
  size_t pos = 0;
  while (pos < text.size()) {
    size_t newline = text.find('\n', pos);
    if (newline == std::string::npos) newline = text.size();
    const absl::string_view line = absl::StripAsciiWhitespace(
        absl::string_view(text).substr(pos, newline - pos));
    pos = newline + 1;
    ++line_number;
    if (line.empty() || line.front() == '#') continue;

    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    for (absl::string_view& field : fields)
      field = absl::StripAsciiWhitespace(field);
    if (!seen_header) {
      links = fields.size() == 5 && fields[2] == "down_mbps" && fields[3] == "up_mbps";
      if (!(fields.size() == 3 || links) || fields[0] != "client" || fields[1] != "speed" ||
          fields.back() != "windows") {
        return error("expected the header 'client,speed,windows' or "
                     "'client,speed,down_mbps,up_mbps,windows', got '", line, "'");
      }
      seen_header = true;
      continue;
    }
    if (fields.size() != (links ? 5u : 3u)) {
      return error("expected ", links ? 5 : 3, " fields (",
                   links ? "client,speed,down_mbps,up_mbps,windows" : "client,speed,windows",
                   "), got ", fields.size());
    }

    const uint64_t expected = trace.speeds.size();
    uint64_t client = 0;
    if (!absl::SimpleAtoi(fields[0], &client)) {
      return error("client '", fields[0], "' is not a non-negative integer");
    }
    if (client != expected) {
      return error("client ", client, " is out of order: expected ", expected,
                   " (rows are clients 0, 1, 2, ... in order)");
    }

    double speed = 0;
    if (!absl::SimpleAtod(fields[1], &speed) || !IsFinite(speed) ||
        speed <= 0) {
      return error("speed must be a finite number > 0, got '", fields[1], "'");
    }
    const float stored_speed = static_cast<float>(speed);
    if (!(std::isfinite(stored_speed) && stored_speed > 0)) {
      return error("speed ", fields[1], " is outside the range of a float");
    }
    trace.speeds.push_back(stored_speed);
    trace.offsets.push_back(static_cast<uint32_t>(trace.windows.size()));
    if (links) {
      for (int k : {2, 3}) {
        double mbps = 0;
        if (!absl::SimpleAtod(fields[k], &mbps) || !IsFinite(mbps) || mbps <= 0 ||
            mbps > 1e6) {
          return error(k == 2 ? "down_mbps" : "up_mbps",
                       " must be a number in (0, 1e6] megabits per second, got '", fields[k],
                       "'");
        }
        (k == 2 ? trace.downlinks : trace.uplinks).push_back(static_cast<float>(mbps));
      }
    }

    const absl::string_view windows = fields.back();
    const size_t first = trace.windows.size();
    if (windows == "always") {
      trace.windows.push_back({0, period > 0 ? period : kInfinity});
    } else if (windows == "never") {
      // No windows.
    } else if (windows.empty()) {
      return error(
          "windows is empty: write 'always', 'never' or start-end pairs");
    } else {
      for (absl::string_view token :
           absl::StrSplit(windows, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
        const size_t dash = WindowSeparator(token);
        Window w{0, 0};
        if (dash == absl::string_view::npos ||
            !absl::SimpleAtod(token.substr(0, dash), &w.start) ||
            !absl::SimpleAtod(token.substr(dash + 1), &w.end)) {
          return error("malformed window '", token,
                       "': expected start-end in seconds, e.g. 0-3600");
        }
        if (!IsFinite(w.start) || !IsFinite(w.end)) {
          return error("window '", token, "' is not finite");
        }
        if (w.start < 0) return error("window '", token, "' starts before 0");
        if (!(w.start < w.end)) {
          return error("window '", token, "' does not end after it starts");
        }
        if (period > 0 && w.end > period) {
          return error("window '", token, "' ends after the trace period (",
                       period, " s)");
        }
        if (trace.windows.size() > first) {
          Window& previous = trace.windows.back();
          if (w.start < previous.end) {
            return error("window '", token,
                         "' overlaps or comes before the previous one, which "
                         "ends at ",
                         previous.end, " (windows must be sorted)");
          }
          if (w.start == previous.end) {  // touching: one stretch
            previous.end = w.end;
            continue;
          }
        }
        trace.windows.push_back(w);
      }
    }
    if (trace.windows.size() >= std::numeric_limits<uint32_t>::max()) {
      return error("too many windows in the trace (over 2^32)");
    }
  }
  if (!seen_header) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": empty trace: expected the header 'client,speed,windows'"));
  }
  if (trace.speeds.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the trace has a header but no client rows"));
  }
  trace.offsets.push_back(static_cast<uint32_t>(trace.windows.size()));
  trace.speeds.shrink_to_fit();
  trace.downlinks.shrink_to_fit();
  trace.uplinks.shrink_to_fit();
  trace.offsets.shrink_to_fit();
  trace.windows.shrink_to_fit();
  return trace;
}

double Population::Speed(uint64_t client) const {
  if (client >= size_) return 0;
  if (has_trace_) return trace_.speeds[client];
  if (speed_.kind == Distribution::Kind::kConstant) return speed_.value;
  Rng rng(MixSeed(MixSeed(seed_, client), kSpeedStream));
  return speed_.Draw(rng);
}

double Population::Link(uint64_t client, const std::vector<float>& traced,
                        const std::optional<Distribution>& drawn, uint64_t stream) const {
  if (client >= size_) return 0;
  if (!traced.empty()) return traced[client];
  if (!drawn) return 0;
  if (drawn->kind == Distribution::Kind::kConstant) return drawn->value;
  Rng rng(MixSeed(MixSeed(seed_, client), stream));
  return drawn->Draw(rng);
}

double Population::DownlinkMbps(uint64_t client) const {
  return Link(client, trace_.downlinks, downlink_, kDownlinkStream);
}

double Population::UplinkMbps(uint64_t client) const {
  return Link(client, trace_.uplinks, uplink_, kUplinkStream);
}

bool Population::IsAvailable(uint64_t client, double t, uint32_t round) const {
  if (client >= size_) return false;
  if (has_trace_) return TraceOnlineUntil(client, t) > t;
  switch (availability_.kind) {
    case AvailabilityOptions::Kind::kAlways:
      return true;
    case AvailabilityOptions::Kind::kRandom: {
      const uint64_t key = MixSeed(MixSeed(seed_, client), kRoundStream);
      return UnitOpen(MixSeed(key, round)) < availability_.probability;
    }
    case AvailabilityOptions::Kind::kDiurnal:
      return DiurnalOnlineUntil(client, t) > t;
  }
  return false;
}

double Population::OnlineUntil(uint64_t client, double t) const {
  if (client >= size_) return t;
  if (has_trace_) return TraceOnlineUntil(client, t);
  if (availability_.kind == AvailabilityOptions::Kind::kDiurnal) {
    return DiurnalOnlineUntil(client, t);
  }
  return kInfinity;
}

// The client is online in [s_k, s_k + on) for every integer k, where
// s_k = k * period - phase. Both IsAvailable and OnlineUntil go through the
// same s_k expression, so the end returned is exactly where the client is
// first seen offline, whatever the rounding.
double Population::DiurnalOnlineUntil(uint64_t client, double t) const {
  if (availability_.online_fraction >= 1) return kInfinity;
  const double period = availability_.period_s;
  const double phase =
      UnitOpen(MixSeed(MixSeed(seed_, client), kPhaseStream)) * period;
  auto cycle_start = [&](double k) { return k * period - phase; };
  double k = std::floor((t + phase) / period);
  if (cycle_start(k) > t) k -= 1;
  if (cycle_start(k + 1) <= t) k += 1;
  const double end = cycle_start(k) + availability_.online_fraction * period;
  return end > t ? end : t;
}

// With a period, time t falls in repetition k (k * period <= t < (k+1) *
// period); windows are compared in absolute time (k * period + start) so the
// end returned is exactly where the client is first seen offline.
double Population::TraceOnlineUntil(uint64_t client, double t) const {
  const Window* begin = trace_.windows.data() + trace_.offsets[client];
  const Window* end = trace_.windows.data() + trace_.offsets[client + 1];
  if (begin == end || std::isnan(t)) return t;
  double base = 0;
  double k = 0;
  if (trace_period_ > 0) {
    k = std::floor(t / trace_period_);
    if (k * trace_period_ > t) k -= 1;
    if ((k + 1) * trace_period_ <= t) k += 1;
    base = k * trace_period_;
  }
  // The last window starting at or before t (in the period), and its
  // neighbours in case rounding of t - base put t on the wrong side.
  const double local = t - base;
  const Window* found = std::upper_bound(
      begin, end, local, [](double x, const Window& w) { return x < w.start; });
  const Window* lo = found - begin >= 2 ? found - 2 : begin;
  const Window* hi = found < end ? found + 1 : end;
  for (const Window* w = lo; w < hi; ++w) {
    if (base + w->start <= t && t < base + w->end) {
      if (trace_period_ > 0 && w->end >= trace_period_ && begin->start == 0) {
        // The stretch runs on into the next repetition's first window.
        if (end - begin == 1) return kInfinity;
        return (k + 1) * trace_period_ + begin->end;
      }
      return base + w->end;
    }
  }
  return t;
}

size_t Population::MemoryBytes() const {
  return (trace_.speeds.capacity() + trace_.downlinks.capacity() + trace_.uplinks.capacity()) *
             sizeof(float) +
         trace_.offsets.capacity() * sizeof(uint32_t) +
         trace_.windows.capacity() * sizeof(Window);
}

}  // namespace shoal::simulation
