// RunMetrics: a run's Prometheus series (issue 18), fed by the round engine
// as a RoundObserver and by the gRPC server as an RpcObserver, for
// telemetry::Endpoint to serve on /metrics. Names follow Prometheus's
// conventions: the shoal_ prefix, base units (seconds, bytes), _total on
// counters.
#ifndef SHOAL_EXPERIMENT_RUN_METRICS_H_
#define SHOAL_EXPERIMENT_RUN_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/agent.h"
#include "server/coordinator.h"
#include "server/grpc_service.h"

namespace shoal {

// The series (labels in braces):
//   shoal_rounds_total                         rounds finished
//   shoal_round_duration_seconds               histogram of a round's time
//   shoal_round                                the last round finished
//   shoal_aggregation_duration_seconds         histogram: folding results in + the server step
//   shoal_evaluation_duration_seconds          histogram: the server's own evaluation
//   shoal_clients_sampled_total                sampled for training
//   shoal_clients_answered_total               valid results folded in
//   shoal_clients_failed_total{reason}         by status code ("deadline_exceeded", ...)
//   shoal_clients_declined_total               said "not now" (issue 17)
//   shoal_clients_connected                    live devices (when given a count)
//   shoal_upload_bytes_total                   update bytes received in rounds
//   shoal_sent_bytes_total{method}             response bytes the gRPC server sent
//   shoal_rpc_duration_seconds{method,code}    histogram of gRPC calls
//   shoal_secagg_clients{stage}                clients left after each stage, last round
//   shoal_dp_epsilon                           privacy spent (with a DP strategy)
//   shoal_model_version                        the training model's version
//   shoal_train_loss, shoal_test_loss, shoal_test_accuracy   last round's
//   shoal_federated_accuracy                   clients' evaluation, last round
// Thread-safe.
class RunMetrics : public RoundObserver, public RpcObserver {
 public:
  RunMetrics();

  // The registry to serve (with telemetry::ProcessMetrics()).
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // CountConnected makes shoal_clients_connected read `count` at each scrape
  // (e.g. the devices the ClientManager counts live).
  std::shared_ptr<prometheus::Collectable> ConnectedClients(std::function<double()> count) const;

  void OnRoundStart(uint32_t round, size_t sampled) override;
  void OnSecureStage(uint32_t round, const std::string& stage, size_t answered,
                     size_t asked) override;
  void OnRoundEnd(const RoundRecord& record) override;

  void OnCallEnd(absl::string_view method, absl::Duration latency, grpc::StatusCode code) override;
  void OnSent(absl::string_view method, size_t bytes) override;

 private:
  // MethodLabel bounds what a peer can make into a label: a Shoal method
  // name as it is, anything else "other".
  static std::string MethodLabel(absl::string_view method);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& rounds_;
  prometheus::Histogram& round_seconds_;
  prometheus::Gauge& round_;
  prometheus::Histogram& aggregate_seconds_;
  prometheus::Histogram& evaluate_seconds_;
  prometheus::Counter& sampled_;
  prometheus::Counter& answered_;
  prometheus::Family<prometheus::Counter>& failed_;
  prometheus::Counter& declined_;
  prometheus::Counter& upload_bytes_;
  prometheus::Family<prometheus::Counter>& sent_bytes_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;
  prometheus::Family<prometheus::Gauge>& secagg_;
  prometheus::Gauge& dp_epsilon_;
  prometheus::Gauge& model_version_;
  prometheus::Gauge& train_loss_;
  prometheus::Gauge& test_loss_;
  prometheus::Gauge& test_accuracy_;
  prometheus::Gauge& federated_accuracy_;
};

// DeviceMetrics returns a device's series, read from `read` (an agent's
// stats()) at each scrape, for `shoal client --metrics-listen`:
//   shoal_device_rounds_total                  training results uploaded
//   shoal_device_tasks_total{kind}             fit, evaluate, secagg tasks served
//   shoal_device_task_failures_total{kind}     ... of which failed
//   shoal_device_declined_total                training declined (may-train check)
//   shoal_device_train_seconds_total           local training time
//   shoal_device_train_examples_total          examples trained on
//   shoal_device_downloaded_bytes_total, shoal_device_uploaded_bytes_total
//   shoal_device_reconnects_total
//   shoal_device_model_version                 the training model held (once one is)
//   shoal_device_train_loss                    the last round's (once trained)
//   shoal_device_serving_version               with `serving_version`: the version served
// `read` and `serving_version` are called on the endpoint's threads.
std::shared_ptr<prometheus::Collectable> DeviceMetrics(
    std::function<client::AgentStats()> read,
    std::function<int64_t()> serving_version = nullptr);

}  // namespace shoal

#endif  // SHOAL_EXPERIMENT_RUN_METRICS_H_
