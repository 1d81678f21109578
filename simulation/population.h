// Simulated device profiles: how fast each virtual client trains and when it
// can be reached. The simulator holds up to millions of clients in one
// process, so synthetic profiles are pure functions of (seed, client) and
// cost no memory; a recorded trace is stored in flat arrays.
#ifndef SHOAL_SIMULATION_POPULATION_H_
#define SHOAL_SIMULATION_POPULATION_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/random.h"

namespace shoal::simulation {

// Distribution: a positive quantity drawn once per client. Only the fields of
// `kind` are used (and validated).
//
// Example:
//   // Half the clients train slower than 100 examples/s.
//   Distribution speed = Distribution::LogNormal(100, /*sigma=*/0.8);
struct Distribution {
  enum class Kind { kConstant, kUniform, kLogNormal };

  Kind kind = Kind::kConstant;
  // constant: every draw is `value`, finite and > 0.
  double value = 1;
  // uniform: draws are uniform in [min, max]; 0 < min <= max, both finite.
  double min = 0;
  double max = 0;
  // lognormal: exp(N(log median, sigma^2)), so half the draws fall below
  // `median`; median finite and > 0, sigma in [0, 10] (0 is constant).
  double median = 1;
  double sigma = 0;

  static Distribution Constant(double value);
  static Distribution Uniform(double min, double max);
  static Distribution LogNormal(double median, double sigma);

  // Validate returns InvalidArgument naming `name` and the field, e.g.
  // "speed.sigma must be in [0, 10], got -1".
  absl::Status Validate(absl::string_view name) const;
  // Draw returns one value, finite and > 0 for valid options. Consumes a
  // kind-dependent number of outputs of `rng`.
  double Draw(Rng& rng) const;
};

// ParseDistributionKind accepts "constant", "uniform" and "lognormal";
// anything else is InvalidArgument naming the value and the choices.
absl::StatusOr<Distribution::Kind> ParseDistributionKind(
    absl::string_view name);
std::string DistributionKindName(Distribution::Kind kind);

// AvailabilityOptions: when a synthetic client can be sampled. Only the
// fields of `kind` are used (and validated).
struct AvailabilityOptions {
  enum class Kind {
    kAlways,   // every round
    kRandom,   // each round independently, with `probability`
    kDiurnal,  // during a daily-like window whose phase differs per client
  };

  Kind kind = Kind::kAlways;
  // random: the chance a client is available for a given round, drawn
  // independently per (client, round); in (0, 1].
  double probability = 1.0;
  // diurnal: each client is online for `online_fraction` of every
  // `period_s`, starting at a phase drawn per client, uniform in
  // [0, period_s). period_s finite and > 0; online_fraction in (0, 1].
  double period_s = 86400;
  double online_fraction = 0.5;

  // Validate returns InvalidArgument naming the field, e.g.
  // "availability.probability must be in (0, 1], got 0".
  absl::Status Validate() const;
};

// ParseAvailabilityKind accepts "always", "random" and "diurnal".
absl::StatusOr<AvailabilityOptions::Kind> ParseAvailabilityKind(
    absl::string_view name);
std::string AvailabilityKindName(AvailabilityOptions::Kind kind);

// kMaxTraceBytes: trace files larger than this (1 GiB) are refused before
// they are read. A 1,000,000-client trace with a few windows each is ~50 MB.
inline constexpr uint64_t kMaxTraceBytes = uint64_t{1} << 30;

// PopulationOptions. Defaults: 100 identical, always-available clients
// training 100 examples per simulated second.
//
// Trace file (`trace_path`): CSV, UTF-8/ASCII, a header line
// `client,speed,windows`, then one row per client:
//   client   the row's index: 0, 1, 2, ... in order
//   speed    examples per simulated second, finite and > 0
//   down_mbps, up_mbps  (optional pair of columns, header
//            `client,speed,down_mbps,up_mbps,windows`) the client's link
//            speeds in megabits per second, in (0, 1e6]
//   windows  when the client is online: `always`, `never`, or space-separated
//            `start-end` pairs in simulated seconds (`0-3600 7200-10800`),
//            start >= 0, start < end, sorted, not overlapping; a client is
//            online at t when start <= t < end. Touching windows merge.
// Empty lines and lines starting with '#' are skipped. With trace_period_s
// > 0, windows lie within [0, trace_period_s] and repeat every period (a
// window ending at the period joins one starting at 0); otherwise a client
// is offline after its last window.
struct PopulationOptions {
  // Number of virtual clients, >= 1. Ignored with a trace (one per row).
  uint64_t num_clients = 100;
  // Seeds every synthetic profile (speed, diurnal phase, random rounds).
  uint64_t seed = 0;
  // Training speed in examples per simulated second.
  Distribution speed = Distribution::Constant(100);
  // Link speeds in megabits per second, drawn per client: the model's
  // download and the update's upload. Unset (and no link columns in the
  // trace): the client's link is the simulator's bandwidth_mbps.
  std::optional<Distribution> downlink_mbps;
  std::optional<Distribution> uplink_mbps;
  AvailabilityOptions availability;
  // When set, speeds and availability come from this trace file, and
  // `num_clients`, `speed` and `availability` are ignored (still validated).
  std::string trace_path;
  // Trace windows repeat with this period in seconds; 0: they do not.
  // Finite and >= 0; > 0 only with a trace.
  double trace_period_s = 0;

  // Validate returns InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

// Population: the device profiles of N virtual clients, numbered 0 to N-1.
// Synthetic profiles are recomputed on demand from MixSeed(seed, client), so
// an idle client costs nothing here; a trace is stored compactly (4 bytes of
// speed and 4 of offset per client, 16 per window).
// Immutable after Create and thread-safe. Copyable, but a trace-backed copy
// copies the trace.
//
// Example:
//   PopulationOptions options;
//   options.num_clients = 1'000'000;
//   options.speed = Distribution::LogNormal(100, 0.8);
//   options.availability.kind = AvailabilityOptions::Kind::kDiurnal;
//   SHOAL_ASSIGN_OR_RETURN(Population population, Population::Create(options));
//   if (population.IsAvailable(client, now, round)) { ... }
class Population {
 public:
  // Create validates `options` and loads the trace, if any. InvalidArgument
  // for bad options or a malformed trace (naming file:line and the problem),
  // NotFound for a missing trace, ResourceExhausted for one over
  // kMaxTraceBytes.
  static absl::StatusOr<Population> Create(const PopulationOptions& options);

  // size is the number of clients.
  uint64_t size() const { return size_; }

  // Speed is `client`'s training speed in examples per simulated second,
  // finite and > 0; 0 for client >= size().
  double Speed(uint64_t client) const;

  // DownlinkMbps and UplinkMbps are `client`'s link speeds in megabits per
  // second (from the trace, else drawn from the options); 0 when neither
  // gives one (the simulator then uses its bandwidth_mbps) or for
  // client >= size().
  double DownlinkMbps(uint64_t client) const;
  double UplinkMbps(uint64_t client) const;

  // IsAvailable: whether `client` may be sampled in `round` starting at
  // simulated time `t` (seconds since the run started). `round` matters only
  // for random availability and `t` only for diurnal and trace availability.
  // False for client >= size().
  bool IsAvailable(uint64_t client, double t, uint32_t round) const;

  // OnlineUntil is the simulated time at which the online stretch of
  // `client` containing `t` ends, for failing a client whose window closes
  // before it finishes training: infinity if it never does (always
  // availability, diurnal with online_fraction 1, a trace client online
  // `always` or over its whole period, and random availability, which is
  // decided per round), `t` when the client is offline at `t` (or
  // client >= size()). A finite end is the first time the client is seen
  // offline: IsAvailable(client, OnlineUntil(client, t), r) is false.
  double OnlineUntil(uint64_t client, double t) const;

  // TimeDependent says whether availability changes with simulated time
  // (diurnal or a trace); if not, waiting cannot bring more clients online.
  bool TimeDependent() const {
    return has_trace_ || availability_.kind == AvailabilityOptions::Kind::kDiurnal;
  }

  // MemoryBytes is the heap held: 0 for synthetic profiles.
  size_t MemoryBytes() const;

 private:
  // Trace: the parsed file. Client i's windows are
  // windows[offsets[i]] .. windows[offsets[i + 1] - 1], sorted, touching
  // ones merged; each is [start, end) in seconds.
  struct Window {
    double start;
    double end;
  };
  struct Trace {
    std::vector<float> speeds;
    std::vector<float> downlinks;  // empty when the trace has no link columns
    std::vector<float> uplinks;
    std::vector<uint32_t> offsets;
    std::vector<Window> windows;
  };

  explicit Population(const PopulationOptions& options);
  static absl::StatusOr<Trace> LoadTrace(const std::string& path,
                                         double period);
  // TraceOnlineUntil and DiurnalOnlineUntil: OnlineUntil for one kind.
  // IsAvailable is `OnlineUntil(t) > t` for both, so the two always agree.
  double TraceOnlineUntil(uint64_t client, double t) const;
  // Link: a link speed from the trace's column `traced` (when it has one),
  // else drawn from `drawn` on `stream`, else 0.
  double Link(uint64_t client, const std::vector<float>& traced,
              const std::optional<Distribution>& drawn, uint64_t stream) const;
  double DiurnalOnlineUntil(uint64_t client, double t) const;

  uint64_t size_ = 0;
  uint64_t seed_ = 0;
  Distribution speed_;
  std::optional<Distribution> downlink_;
  std::optional<Distribution> uplink_;
  AvailabilityOptions availability_;
  double trace_period_ = 0;
  bool has_trace_ = false;
  Trace trace_;
};

}  // namespace shoal::simulation

#endif  // SHOAL_SIMULATION_POPULATION_H_
