// Dashboard: what the live dashboard shows (issue 18.2), kept as the rounds
// go (a RoundObserver) and served as JSON on api/state beside the page
// (telemetry/dashboard.html) and Chart.js, on the metrics endpoint.
#ifndef SHOAL_EXPERIMENT_DASHBOARD_H_
#define SHOAL_EXPERIMENT_DASHBOARD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/client_manager.h"
#include "server/coordinator.h"
#include "server/federation_server.h"

namespace shoal {

namespace telemetry {
class Endpoint;
}

struct DashboardOptions {
  std::string run_name;
  std::string strategy;
  uint32_t rounds = 0;
  // Read at each request (thread-safe, not owned): the registered devices,
  // and what each serves (may be null).
  std::function<std::vector<ClientStatus>()> devices;
  std::function<std::map<std::string, FleetServing>()> fleet;
  // The devices listed at most (those with the most failures first, then
  // by ID); the rest are counted.
  size_t max_devices = 500;
  // A long-running federation's runs (`shoal serve`), read at each request
  // (thread-safe, may be null): api/state's "runs", a JSON array.
  std::function<nlohmann::json()> runs;
};

// Dashboard is thread-safe: the Coordinator's thread reports rounds while
// the endpoint's threads read the state.
class Dashboard : public RoundObserver {
 public:
  explicit Dashboard(DashboardOptions options);

  // Serve adds the page ("/"), Chart.js ("/chart.js") and the state
  // ("/api/state") to `endpoint`. NotFound when Chart.js is not installed.
  absl::Status Serve(telemetry::Endpoint& endpoint);

  // SetState says how the run stands: "running" (the default), "finished",
  // "stopped"...
  void SetState(const std::string& state);

  // BeginRun starts the page over for the next run of a long-running
  // federation: its name, strategy and planned rounds; no rounds yet.
  // Device failures are kept: they belong to the devices.
  void BeginRun(const std::string& name, const std::string& strategy, uint32_t rounds);

  // StateJson is api/state: {run, current, rounds, devices, devices_total,
  // live_devices, failures_by_reason}, and runs when options.runs is set.
  nlohmann::json StateJson() const;

  void OnRoundStart(uint32_t round, size_t sampled) override;
  void OnRoundEnd(const RoundRecord& record) override;
  void OnRestored(const std::vector<RoundRecord>& history) override;

 private:
  void AddRound(const RoundRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DashboardOptions options_;
  mutable absl::Mutex mu_;
  std::string state_ ABSL_GUARDED_BY(mu_) = "running";
  std::string run_name_ ABSL_GUARDED_BY(mu_);
  std::string strategy_ ABSL_GUARDED_BY(mu_);
  uint32_t planned_rounds_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t current_round_ ABSL_GUARDED_BY(mu_) = 0;
  size_t current_sampled_ ABSL_GUARDED_BY(mu_) = 0;
  nlohmann::json rounds_ ABSL_GUARDED_BY(mu_) = nlohmann::json::array();
  std::map<std::string, int64_t> failures_by_reason_ ABSL_GUARDED_BY(mu_);
  struct DeviceFailures {
    int64_t count = 0;
    std::string last;
  };
  std::map<std::string, DeviceFailures> device_failures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_EXPERIMENT_DASHBOARD_H_
