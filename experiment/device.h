// shoal::Device: the device runtime for applications (docs/lifecycle.md).
// One object that takes part in every run of a federation (`shoal serve`)
// it can reach, keeps the serving versions the server offers (signed,
// judged by the device's guard on its own held-out data, kept on disk), and
// answers predictions in-process (Predict, thread-safe, with an atomic hot
// swap) and, when asked, on a local endpoint for other processes. It serves
// from disk at once, with or without a server, and after its own restart.
// `shoal client --serve` is this class behind flags.
//
// The header is a façade: it needs only ATen and Abseil.
#ifndef SHOAL_EXPERIMENT_DEVICE_H_
#define SHOAL_EXPERIMENT_DEVICE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/agent_stats.h"

namespace shoal {

struct DeviceOptions {
  // The experiment config (JSON file) the device's runs share: model, task,
  // data format, seed, holdout fraction; its server.address is the default
  // server.
  std::string config;
  // The device's own data, a folder in the config's data format; or, when
  // empty, partition `partition` of the config's data (demos and tests).
  std::string data_dir;
  int partition = -1;
  // The federation's host:port; empty: the config's server.address.
  std::string server;
  // This device's bundle from `shoal certs client` (ca.pem, client.pem,
  // client.key, model-signing.pub). Required: serving versions are signed
  // and a device trusts only its server's key.
  std::string pki_dir;
  // Where the newest training model and the serving versions
  // (state_dir/serving) are kept. Required.
  std::string state_dir;
  // Also answer other processes on this address: "unix:PATH" or a loopback
  // "127.0.0.1:PORT" (shoal.v1.LocalPredict). Empty: in-process only.
  std::string endpoint;
  int keep = 2;                // serving versions kept besides the newest
  std::string compute = "cpu";  // LibTorch device: cpu, or cuda[:N] with a CUDA build
  // The device's caps on a round of training: at most `time_budget` of
  // training (stopping early and reporting what it trained), at most
  // `memory_budget_bytes` added (the batch size is lowered to fit; 0: no
  // cap), and `may_train`, asked before each round: OK trains, anything
  // else declines the round with its message as the reason (unset: always
  // train; shoal/client.h MayTrainCommand and PauseWhileFileExists build
  // one from a command or a file).
  absl::Duration time_budget = absl::InfiniteDuration();
  int64_t memory_budget_bytes = 0;
  std::function<absl::Status()> may_train;
};

// DevicePrediction: one answer of Predict.
struct DevicePrediction {
  at::Tensor outputs;           // the model's raw outputs, on the CPU
  int64_t serving_version = 0;  // the serving version that computed them
};

// Device is thread-safe.
class Device {
 public:
  // Open reads the config and the data, builds the model, checks the
  // bundle, serves the newest serving version on disk (if any) and starts
  // the endpoint. It does not reach the server yet (Start). Errors name the
  // option, key or file at fault.
  static absl::StatusOr<std::unique_ptr<Device>> Open(const DeviceOptions& options);
  ~Device();  // Stop()
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Start takes part in the federation's runs on a thread of its own: joins,
  // trains when sampled, takes serving versions, and after each run (or
  // while the server is unreachable) waits for the next, until Stop.
  void Start();
  // Stop leaves the federation (the run in progress goes on without this
  // device); predictions keep working. Idempotent.
  void Stop();

  // Predict runs the serving model on float32 `inputs` [N, ...].
  // Unavailable before any serving version; InvalidArgument for inputs the
  // model cannot take.
  absl::StatusOr<DevicePrediction> Predict(const at::Tensor& inputs) const;
  // The serving version in use (0: none yet).
  int64_t serving_version() const;
  // What the device has done in the federation's runs since Open: tasks,
  // rounds, bytes, training time (the run in progress included).
  client::AgentStats stats() const;
  // The device's client ID (its certificate's name).
  const std::string& id() const;
  // The endpoint's port for a loopback endpoint ("127.0.0.1:0" picks one);
  // 0 otherwise.
  int endpoint_port() const;

 private:
  struct Impl;
  explicit Device(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// AskDevice is the client of a device's local endpoint, for the other
// processes on the device: it sends float32 `inputs` [N, ...] to `endpoint`
// ("unix:PATH" or "127.0.0.1:PORT") in one request and returns the serving
// model's outputs. The endpoint takes at most 4 MiB and 1024 rows a request
// (LocalEndpointOptions); ask about more in several calls.
// Errors: the endpoint's (Unavailable while it serves no version yet,
// InvalidArgument for inputs the model cannot take), Unavailable when
// nothing answers within `timeout_ms`.
absl::StatusOr<DevicePrediction> AskDevice(const std::string& endpoint, const at::Tensor& inputs,
                                           int64_t timeout_ms = 10000);

}  // namespace shoal

#endif  // SHOAL_EXPERIMENT_DEVICE_H_
