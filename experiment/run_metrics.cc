#include "experiment/run_metrics.h"

#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace shoal {
namespace {

// A round takes seconds to an hour; an RPC microseconds (a poll answered at
// once) to minutes (a long poll, an upload).
const prometheus::Histogram::BucketBoundaries kRoundBuckets = {1,  2,   5,   10,  20,  30,
                                                              60, 120, 300, 600, 1800, 3600};
const prometheus::Histogram::BucketBoundaries kRpcBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

template <typename Builder>
auto& Named(Builder builder, const char* name, const char* help,
            prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}

prometheus::Counter& OneCounter(prometheus::Registry& registry, const char* name,
                               const char* help) {
  return Named(prometheus::BuildCounter(), name, help, registry).Add({});
}
prometheus::Gauge& OneGauge(prometheus::Registry& registry, const char* name, const char* help) {
  return Named(prometheus::BuildGauge(), name, help, registry).Add({});
}

// SetAccuracy sets `gauge` to an evaluation's accuracy, when it has one.
void SetAccuracy(const std::optional<EvaluateRes>& eval, prometheus::Gauge& gauge) {
  if (!eval) return;
  auto a = eval->metrics.find("accuracy");
  if (a != eval->metrics.end()) gauge.Set(MetricAsDouble(a->second));
}

std::string CodeLabel(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

class CallbackGauge final : public prometheus::Collectable {
 public:
  CallbackGauge(std::string name, std::string help, std::function<double()> read)
      : name_(std::move(name)), help_(std::move(help)), read_(std::move(read)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = name_;
    family.help = help_;
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = read_();
    family.metric.push_back(metric);
    return {family};
  }

 private:
  std::string name_;
  std::string help_;
  std::function<double()> read_;
};

}  // namespace

RunMetrics::RunMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      rounds_(OneCounter(*registry_, "shoal_rounds_total", "Rounds finished")),
      round_seconds_(Named(prometheus::BuildHistogram(), "shoal_round_duration_seconds",
                           "How long each round took", *registry_)
                         .Add({}, kRoundBuckets)),
      round_(OneGauge(*registry_, "shoal_round", "The last round finished")),
      sampled_(OneCounter(*registry_, "shoal_clients_sampled_total",
                          "Clients sampled for training")),
      answered_(OneCounter(*registry_, "shoal_clients_answered_total",
                           "Clients whose result was folded into the model")),
      failed_(Named(prometheus::BuildCounter(), "shoal_clients_failed_total",
                    "Sampled clients that did not deliver a usable result, by reason",
                    *registry_)),
      declined_(OneCounter(*registry_, "shoal_clients_declined_total",
                           "Sampled clients that said they may not train now")),
      upload_bytes_(OneCounter(*registry_, "shoal_upload_bytes_total",
                               "Bytes of the updates received in rounds")),
      sent_bytes_(Named(prometheus::BuildCounter(), "shoal_sent_bytes_total",
                        "Bytes of the responses the gRPC server sent, by method", *registry_)),
      rpc_seconds_(Named(prometheus::BuildHistogram(), "shoal_rpc_duration_seconds",
                         "gRPC calls from arrival to status, by method and code", *registry_)),
      secagg_(Named(prometheus::BuildGauge(), "shoal_secagg_clients",
                    "Clients left after each secure-aggregation stage of the last round",
                    *registry_)),
      dp_epsilon_(OneGauge(*registry_, "shoal_dp_epsilon",
                           "Differential privacy spent so far (epsilon)")),
      model_version_(OneGauge(*registry_, "shoal_model_version", "The training model's version")),
      train_loss_(OneGauge(*registry_, "shoal_train_loss", "Mean training loss of the last round")),
      test_loss_(OneGauge(*registry_, "shoal_test_loss",
                          "Server-side test loss after the last round")),
      test_accuracy_(OneGauge(*registry_, "shoal_test_accuracy",
                              "Server-side test accuracy after the last round (0-1)")),
      federated_accuracy_(OneGauge(*registry_, "shoal_federated_accuracy",
                                   "The clients' evaluation after the last round (0-1)")) {}

std::shared_ptr<prometheus::Collectable> RunMetrics::ConnectedClients(
    std::function<double()> count) const {
  return std::make_shared<CallbackGauge>("shoal_clients_connected",
                                         "Devices live now (heard from recently)",
                                         std::move(count));
}

void RunMetrics::OnRoundStart(uint32_t round, size_t sampled) {
  sampled_.Increment(static_cast<double>(sampled));
}

void RunMetrics::OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                               size_t asked) {
  secagg_.Add({{"stage", stage}}).Set(static_cast<double>(answered));
}

void RunMetrics::OnRoundEnd(const RoundRecord& r) {
  if (r.server_eval) test_loss_.Set(r.server_eval->loss);
  SetAccuracy(r.server_eval, test_accuracy_);
  if (r.round == 0) return;  // the initial model's evaluation
  rounds_.Increment();
  round_.Set(r.round);
  round_seconds_.Observe(r.seconds);
  answered_.Increment(static_cast<double>(r.answered));
  declined_.Increment(static_cast<double>(r.declined.size()));
  for (const ClientFailure& f : r.failures) {
    failed_.Add({{"reason", CodeLabel(f.status.code())}}).Increment();
  }
  upload_bytes_.Increment(static_cast<double>(r.upload_bytes));
  model_version_.Set(static_cast<double>(r.model_version));
  if (std::isfinite(r.train_loss)) train_loss_.Set(r.train_loss);
  SetAccuracy(r.federated_eval, federated_accuracy_);
  auto eps = r.strategy_metrics.find("dp_epsilon");
  if (eps != r.strategy_metrics.end()) dp_epsilon_.Set(MetricAsDouble(eps->second));
}

std::string RunMetrics::MethodLabel(absl::string_view method) {
  // "/shoal.v1.Federation/Poll": letters, digits, '.', '/', '_' only.
  if (!absl::StartsWith(method, "/shoal.v1.") || method.size() > 64) return "other";
  for (char c : method) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/' || c == '_')) {
      return "other";
    }
  }
  return std::string(method);
}

void RunMetrics::OnCallEnd(absl::string_view method, absl::Duration latency,
                           grpc::StatusCode code) {
  rpc_seconds_
      .Add({{"method", MethodLabel(method)},
            {"code", CodeLabel(static_cast<absl::StatusCode>(code))}},
           kRpcBuckets)
      .Observe(absl::ToDoubleSeconds(latency));
}

void RunMetrics::OnSent(absl::string_view method, size_t bytes) {
  sent_bytes_.Add({{"method", MethodLabel(method)}}).Increment(static_cast<double>(bytes));
}

}  // namespace shoal
