// The load benchmark's lightweight device: LoadClient speaks the device
// protocol (Join, long-Poll, DownloadModel, SubmitFit, SubmitEvaluate,
// Leave) directly on the stub, over its own channel and TCP connection, and
// answers every fit task at once with a small deterministic update instead
// of training. Many of them in one process load one real server the way a
// fleet of devices would, minus the training time.
//
// LoadRecorder gathers what they measure: latency per RPC, errors per RPC
// and status code, and per round when the fit tasks arrived and the updates
// went out.
#ifndef SHOAL_BENCH_LOAD_CLIENT_H_
#define SHOAL_BENCH_LOAD_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/parameters.h"
#include "common/signing.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal::bench {

// LatencySummary: order statistics of one RPC's latencies, in milliseconds.
struct LatencySummary {
  int64_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// RoundSpan: one round as the clients saw it.
struct RoundSpan {
  absl::Time first_task = absl::InfiniteFuture();  // first fit task received
  absl::Time last_task = absl::InfinitePast();
  absl::Time last_submit =
      absl::InfinitePast();  // last fit upload acknowledged
  int64_t tasks = 0;
  int64_t submits = 0;
};

// LoadRecorder is shared by every LoadClient of a run. Thread-safe.
class LoadRecorder {
 public:
  void Latency(const std::string& rpc, absl::Duration d);
  // Error counts a failed call under "<rpc> <STATUS_CODE>".
  void Error(const std::string& rpc, const grpc::Status& status);
  void FitTaskReceived(uint32_t round);
  void FitSubmitted(uint32_t round);

  std::map<std::string, LatencySummary> Latencies() const;
  std::map<std::string, int64_t> Errors() const;
  std::map<uint32_t, RoundSpan> Rounds() const;
  // RoundsCompleted counts the rounds whose fit uploads all `clients` made.
  int RoundsCompleted(int64_t clients) const;

  // Progress counters, read by the progress printer.
  std::atomic<int64_t> connected{0};
  std::atomic<int64_t> joined{0};
  std::atomic<int64_t> finished{0};  // heard the shutdown and left
  std::atomic<int64_t> failed{0};    // gave up with an error

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<double>> latencies_ms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, RoundSpan> rounds_ ABSL_GUARDED_BY(mu_);
};

// LoadClientOptions. `credentials` is this device's own (its TLS identity,
// or insecure credentials for a plaintext run). `model_verifier`, when set,
// checks every downloaded model's signature as a real device does; it may
// be shared by every client.
struct LoadClientOptions {
  std::string server_address;
  std::string client_id;
  int index = 0;  // makes the update deterministic and distinct per client
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::shared_ptr<const ModelVerifier> model_verifier;  // null: not checked
  absl::Duration connect_timeout = absl::Seconds(120);
  absl::Duration rpc_timeout = absl::Seconds(120);
  int64_t num_examples = 100;
};

// LoadClient is one simulated device, driven by Run() on one thread.
// Neither owns the other: `recorder` and `stop` outlive the client.
class LoadClient {
 public:
  LoadClient(LoadClientOptions options, LoadRecorder* recorder,
             const std::atomic<bool>* stop);

  // Run connects (a TCP connection and, with TLS, a handshake of its own),
  // joins and serves tasks until the server ends the run (OK, after Leave)
  // or `stop` is set (Cancelled). Transient errors are retried after a
  // second; anything else ends the run with the error.
  absl::Status Run();

 private:
  absl::Status Connect();
  absl::Status Join();
  absl::Status ServeFit(const v1::Task& task);
  absl::Status ServeEvaluate(const v1::Task& task);
  absl::Status Leave(const v1::Task& shutdown);
  // EnsureModel downloads model `version` unless it is the one held,
  // checking the payload's SHA-256 against the task's.
  absl::Status EnsureModel(const v1::ModelVersion& version);
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const;
  // Finish records the call's latency on success and its error otherwise.
  absl::Status Finish(const std::string& rpc, absl::Time start,
                      const grpc::Status& s);

  LoadClientOptions options_;
  LoadRecorder* recorder_;
  const std::atomic<bool>* stop_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Federation::Stub> stub_;
  absl::Duration poll_wait_ = absl::Seconds(10);
  int64_t model_version_ = -1;
  std::string model_sha256_;  // raw digest
  Parameters model_;
};

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_LOAD_CLIENT_H_
