#include "experiment/dashboard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "server/round_json.h"
#include "telemetry/assets.h"
#include "telemetry/endpoint.h"

namespace shoal {

using nlohmann::json;

Dashboard::Dashboard(DashboardOptions options)
    : options_(std::move(options)),
      run_name_(options_.run_name),
      strategy_(options_.strategy),
      planned_rounds_(options_.rounds) {}

absl::Status Dashboard::Serve(telemetry::Endpoint& endpoint) {
  SHOAL_ASSIGN_OR_RETURN(std::string chart_js, telemetry::ReadChartJs());
  endpoint.Handle("/", [] {
    return telemetry::EndpointResponse{200, "text/html; charset=utf-8",
                                       telemetry::DashboardHtml()};
  });
  endpoint.Handle("/chart.js", [js = std::move(chart_js)] {
    return telemetry::EndpointResponse{200, "text/javascript; charset=utf-8", js};
  });
  endpoint.Handle("/api/state", [this] {
    return telemetry::EndpointResponse{
        200, "application/json",
        StateJson().dump(-1, ' ', false, json::error_handler_t::replace)};
  });
  return absl::OkStatus();
}

void Dashboard::SetState(const std::string& state) {
  absl::MutexLock lock(&mu_);
  state_ = state;
}

void Dashboard::BeginRun(const std::string& name, const std::string& strategy,
                         uint32_t rounds) {
  absl::MutexLock lock(&mu_);
  run_name_ = name;
  strategy_ = strategy;
  planned_rounds_ = rounds;
  state_ = "running";
  current_round_ = 0;
  current_sampled_ = 0;
  rounds_ = json::array();
  failures_by_reason_.clear();
}

void Dashboard::OnRoundStart(uint32_t round, size_t sampled) {
  absl::MutexLock lock(&mu_);
  current_round_ = round;
  current_sampled_ = sampled;
}

void Dashboard::OnRoundEnd(const RoundRecord& record) {
  absl::MutexLock lock(&mu_);
  AddRound(record);
}

void Dashboard::OnRestored(const std::vector<RoundRecord>& history) {
  absl::MutexLock lock(&mu_);
  for (const RoundRecord& r : history) AddRound(r);
}

void Dashboard::AddRound(const RoundRecord& r) {
  json j = RoundRecordToJson(r);
  // The page needs counts, not every failure's text.
  j.erase("failures");
  j["declined"] = r.declined.size();
  j.erase("server_eval");
  j.erase("federated_eval");
  rounds_.push_back(std::move(j));
  for (const ClientFailure& f : r.failures) {
    ++failures_by_reason_[absl::AsciiStrToLower(absl::StatusCodeToString(f.status.code()))];
    DeviceFailures& d = device_failures_[f.client_id];
    ++d.count;
    d.last = std::string(f.status.message()).substr(0, 200);
  }
}

json Dashboard::StateJson() const {
  std::vector<ClientStatus> devices =
      options_.devices ? options_.devices() : std::vector<ClientStatus>{};
  std::map<std::string, FleetServing> fleet =
      options_.fleet ? options_.fleet() : std::map<std::string, FleetServing>{};
  json runs = options_.runs ? options_.runs() : json(nullptr);
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  size_t live = 0;
  for (const ClientStatus& d : devices) live += d.live ? 1 : 0;
  auto failures_of = [this](const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = device_failures_.find(id);
    return it == device_failures_.end() ? DeviceFailures{} : it->second;
  };
  // The devices with the most failures first (then by ID): those are the
  // ones to look at. Only the rows shown are ordered.
  std::vector<std::pair<int64_t, size_t>> order;  // (-failures, index)
  order.reserve(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    auto it = device_failures_.find(devices[i].id);
    order.push_back({it == device_failures_.end() ? 0 : -it->second.count, i});
  }
  const size_t shown = std::min(devices.size(), options_.max_devices);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(shown),
                    order.end());
  json rows = json::array();
  for (size_t k = 0; k < shown; ++k) {
    const ClientStatus& d = devices[order[k].second];
    const DeviceFailures f = failures_of(d.id);
    auto serving = fleet.find(d.id);
    rows.push_back(
        {{"id", d.id},
         {"last_seen_s", d.last_seen == absl::InfinitePast()
                             ? json(nullptr)
                             : json(absl::ToDoubleSeconds(now - d.last_seen))},
         {"live", d.live},
         {"model_version", d.model_version},
         {"serving_version", serving == fleet.end() ? 0 : serving->second.serving_version},
         {"failures", f.count},
         {"last_failure", f.last}});
  }
  json state = {{"run",
                 {{"name", run_name_},
                  {"strategy", strategy_},
                  {"rounds", planned_rounds_},
                  {"state", state_}}},
                {"current", {{"round", current_round_}, {"sampled", current_sampled_}}},
                {"rounds", rounds_},
                {"devices", rows},
                {"devices_total", devices.size()},
                {"live_devices", live},
                {"failures_by_reason", failures_by_reason_}};
  if (!runs.is_null()) state["runs"] = std::move(runs);
  return state;
}

}  // namespace shoal
