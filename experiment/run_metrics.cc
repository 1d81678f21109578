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
#include "telemetry/process_metrics.h"

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

}  // namespace

RunMetrics::RunMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      rounds_(OneCounter(*registry_, "shoal_rounds_total", "Rounds finished")),
      round_seconds_(Named(prometheus::BuildHistogram(), "shoal_round_duration_seconds",
                           "How long each round took", *registry_)
                         .Add({}, kRoundBuckets)),
      round_(OneGauge(*registry_, "shoal_round", "The last round finished")),
      aggregate_seconds_(Named(prometheus::BuildHistogram(),
                               "shoal_aggregation_duration_seconds",
                               "Real time the server spent folding in a round's results and "
                               "finishing the aggregate",
                               *registry_)
                             .Add({}, kRpcBuckets)),
      evaluate_seconds_(Named(prometheus::BuildHistogram(), "shoal_evaluation_duration_seconds",
                              "Real time of the server's own evaluation of a new model",
                              *registry_)
                            .Add({}, kRpcBuckets)),
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
  return telemetry::CollectAtScrape([count = std::move(count)] {
    return std::vector<prometheus::MetricFamily>{
        telemetry::OneValueFamily("shoal_clients_connected",
                                  "Devices live now (heard from recently)",
                                  prometheus::MetricType::Gauge, count())};
  });
}

std::shared_ptr<prometheus::Collectable> DeviceMetrics(
    std::function<client::AgentStats()> read, std::function<int64_t()> serving_version) {
  return telemetry::CollectAtScrape([read = std::move(read),
                                     serving_version = std::move(serving_version)] {
    const client::AgentStats s = read();
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    auto counter = [&out](const char* name, const char* help, double value) {
      out.push_back(telemetry::OneValueFamily(name, help, MetricType::Counter, value));
    };
    auto gauge = [&out](const char* name, const char* help, double value) {
      out.push_back(telemetry::OneValueFamily(name, help, MetricType::Gauge, value));
    };
    auto by_kind = [&out](const char* name, const char* help,
                          std::vector<std::pair<const char*, int64_t>> kinds) {
      prometheus::MetricFamily family;
      family.name = name;
      family.help = help;
      family.type = MetricType::Counter;
      for (const auto& [kind, value] : kinds) {
        prometheus::ClientMetric metric;
        metric.label.push_back({"kind", kind});
        metric.counter.value = static_cast<double>(value);
        family.metric.push_back(std::move(metric));
      }
      out.push_back(std::move(family));
    };
    counter("shoal_device_rounds_total", "Training results this device uploaded",
            static_cast<double>(s.rounds));
    by_kind("shoal_device_tasks_total", "Tasks served, by kind",
            {{"fit", s.fit_tasks}, {"evaluate", s.evaluate_tasks}, {"secagg", s.secagg_tasks}});
    by_kind("shoal_device_task_failures_total", "Tasks that failed, by kind",
            {{"fit", s.fit_failed}, {"evaluate", s.evaluate_failed}, {"secagg", s.secagg_failed}});
    counter("shoal_device_declined_total", "Training tasks this device declined (may-train check)",
            static_cast<double>(s.declined));
    counter("shoal_device_train_seconds_total", "Local training time",
            s.train_seconds);
    counter("shoal_device_train_examples_total", "Examples trained on, summed over rounds",
            static_cast<double>(s.train_examples));
    counter("shoal_device_downloaded_bytes_total", "Model and auxiliary bytes downloaded",
            static_cast<double>(s.bytes_downloaded));
    counter("shoal_device_uploaded_bytes_total", "Update and secure-aggregation bytes uploaded",
            static_cast<double>(s.bytes_uploaded));
    counter("shoal_device_reconnects_total", "Times the server was lost and sought again",
            static_cast<double>(s.reconnects));
    if (s.model_version >= 0) {
      gauge("shoal_device_model_version", "The training model this device holds",
            static_cast<double>(s.model_version));
    }
    if (std::isfinite(s.last_train_loss)) {
      gauge("shoal_device_train_loss", "Training loss of the last round this device trained",
            s.last_train_loss);
    }
    if (serving_version) {
      gauge("shoal_device_serving_version", "The model version this device serves (0: none)",
            static_cast<double>(serving_version()));
    }
    return out;
  });
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
  aggregate_seconds_.Observe(r.aggregate_seconds);
  if (r.server_eval) evaluate_seconds_.Observe(r.evaluate_seconds);
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
