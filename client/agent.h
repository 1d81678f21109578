// Agent: the edge device's gRPC side. It dials out to the server (never the
// other way round), joins under a stable ID, long-polls for tasks, runs them
// on a LocalClient, uploads results in chunks, and keeps the newest global
// model on disk so inference works while the server is down. In securely
// aggregated rounds it answers the protocol's stages and uploads its update
// masked (secagg::SecAggParticipant), never in the clear.
#ifndef SHOAL_CLIENT_AGENT_H_
#define SHOAL_CLIENT_AGENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/agent_stats.h"
#include "client/local_client.h"
#include "common/model_dir.h"
#include "common/parameters.h"
#include "common/tls.h"
#include "common/signing.h"
#include "secagg/participant.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal::client {

class ServingRuntime;  // client/serving_runtime.h

// AgentOptions. Defaults suit a device on a flaky link.
struct AgentOptions {
  std::string server_address = "127.0.0.1:50051";
  std::string client_id;  // required; stable across restarts
  // This device's TLS material (mutual TLS; its certificate names
  // client_id). Null: plaintext, for runs that asked for it by name.
  std::shared_ptr<const TlsMaterial> tls;
  // Where the newest global model is kept (model-directory layout).
  std::string state_dir;
  // The model the LocalClient was built with: the device's configured spec
  // and, for a TorchScript file, its bytes (common/model_dir.h
  // ReadModelCode). The server's model code wins: when a task names other
  // code (another built-in, or TorchScript the device does not hold), the
  // agent fetches it, checks it with the weights (and the signature), gives
  // the LocalClient a model built from it, and logs the mismatch. Only a
  // server too old to name its code leaves this model in use.
  ModelCode model_code;
  // The model-signing public key. When set, every model (downloaded, or
  // cached in state_dir at startup) must carry a valid signature by this
  // key over its weights, spec and code before it is trained on or
  // evaluated; a model that does not is refused (the task fails with
  // PermissionDenied) and the last good model stays in use and on disk.
  // Null: models are not verified (their SHA-256s still are).
  std::shared_ptr<const ModelVerifier> model_verifier;
  // Reconnection: exponential backoff with full jitter, from `initial` up to
  // `max`, giving up after `give_up_after` without reaching the server
  // (zero: never give up).
  absl::Duration initial_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration give_up_after = absl::Minutes(10);
  // Deadline of one RPC other than Poll (uploads and downloads).
  absl::Duration rpc_timeout = absl::Minutes(2);
  uint64_t seed = 0;  // jitter
  // The device's serving side (docs/lifecycle.md; not owned, must outlive
  // the agent). When set, each serving version the server offers that is
  // newer than the one served is downloaded, handed to it (verified,
  // guarded, installed) and reported back with ReportServing. Null: this
  // device trains but does not serve.
  ServingRuntime* serving = nullptr;
  // Asked before each training task whether training may start now (idle,
  // charging, unmetered...): OK to train; any other status declines the
  // task, and its message goes to the server as the reason, which counts
  // the device as declined, not failed. Called on the agent's thread, so it
  // should answer quickly. Unset: always train. client/may_train.h makes
  // one from a command or a pause file.
  std::function<absl::Status()> may_train;
};

// Agent is driven by Run() on one thread; Stop() may be called from any
// thread.
class Agent {
 public:
  Agent(AgentOptions options, LocalClient* local);

  // Run joins and serves tasks until the server says the run is over (OK),
  // the server stays unreachable past give_up_after (Unavailable), or
  // Stop() is called (Cancelled).
  absl::Status Run();
  void Stop() { stop_.store(true); }

  // stats returns a snapshot; any thread may call it while Run() runs.
  AgentStats stats() const {
    absl::MutexLock lock(&stats_mu_);
    return stats_;
  }

 private:
  absl::Status JoinWithBackoff();
  absl::Status ServeTask(const v1::Task& task);
  // ServeFit trains; in a securely aggregated round (fit.secagg set) it
  // uploads the masked update instead of the update.
  absl::Status ServeFit(const v1::Task& task);
  // ServeSecAgg answers a secure-aggregation stage that needs no training.
  absl::Status ServeSecAgg(const v1::Task& task);
  // ReportFitFailure tells the server at once that fit task `task_id`
  // failed, so the round does not wait for this client.
  // A DeclinedError is reported as a decline.
  void ReportFitFailure(const std::string& task_id, const absl::Status& error);
  // EnsureModel returns model `version.version()`, from the cache when its
  // SHA-256, spec and code SHA-256 match `version` (the SHA-256 only when
  // the task gives none), else downloaded, and makes the LocalClient run
  // the model's code. A restarted server's version 3 is not the old run's.
  // With a model_verifier, a download is verified against
  // `version.signature()` over weights, spec and code before anything is
  // parsed, loaded or cached (PermissionDenied otherwise); the cache holds
  // verified models only.
  absl::StatusOr<std::shared_ptr<const Parameters>> EnsureModel(
      const v1::ModelVersion& version);
  // FetchCode returns the code `version` names, checked against its
  // code_sha256: a built-in's name, or TorchScript bytes held already (in
  // use, or in state_dir) or downloaded. Not yet verified against the
  // signature. DataLoss when downloaded bytes do not match the hash.
  absl::StatusOr<ModelCode> FetchCode(const v1::ModelVersion& version);
  // TakeServing handles the serving version `offer` from a poll: when it is
  // newer than the one served and was not judged already, it is fetched,
  // handed to options_.serving and reported. Nothing it meets ends the run:
  // failures are logged and reported.
  void TakeServing(const v1::ModelVersion& offer);
  // ActivateCode gives the LocalClient a model built from `code` unless it
  // runs that code already; logs when it is not the device's configured
  // model.
  absl::Status ActivateCode(const ModelCode& code);
  // UploadFit sends `res`: its update, or only its masked input when
  // res.secagg is set.
  absl::Status UploadFit(const std::string& task_id, const FitRes& res);
  // SubmitSecAgg sends the answer to secure-aggregation task `task_id`, or
  // the error that made this client give up.
  absl::Status SubmitSecAgg(const std::string& task_id,
                            const absl::StatusOr<v1::SecAggClientMessage>& answer);
  // DownloadAux fetches the auxiliary tensors of fit task `task_id`.
  absl::StatusOr<Parameters> DownloadAux(const std::string& task_id);
  // ReadPayload reassembles and checks a chunked download of at most
  // `max_bytes`; counts its bytes.
  absl::StatusOr<std::string> ReadPayload(grpc::ClientContext* ctx,
                                          std::unique_ptr<grpc::ClientReader<v1::Chunk>> reader,
                                          uint64_t max_bytes);
  absl::Duration NextBackoff(int attempt);
  // Backoff waits `wait` (less if Stop() is called) while driving the
  // channel's reconnection, so a link that came back is ready when it ends.
  void Backoff(absl::Duration wait);
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const;

  AgentOptions options_;
  LocalClient* local_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Federation::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::mt19937_64 rng_;
  absl::Duration poll_wait_ = absl::Seconds(10);
  // Written on the agent's thread, read by stats() on any.
  mutable absl::Mutex stats_mu_;
  AgentStats stats_ ABSL_GUARDED_BY(stats_mu_);
  template <typename F>
  void Count(F update) {
    absl::MutexLock lock(&stats_mu_);
    update(stats_);
  }
  // The newest global model, also on disk in state_dir, and its code.
  int64_t cached_version_ = -1;
  std::string cached_sha256_hex_;
  std::shared_ptr<const Parameters> cached_model_;
  ModelCode cached_code_;
  std::string cached_code_sha256_;  // raw; empty for a built-in
  // The code the LocalClient's model runs (options_.model_code at first)
  // and its SHA-256 (raw; empty for a built-in).
  ModelCode active_code_;
  std::string active_code_sha256_;
  // This device's side of secure aggregation; a setup message starts a new
  // session in it.
  secagg::SecAggParticipant secagg_;
  // The last secure-aggregation task answered (a stage, or a fit task's
  // masked update) and its answer. The server hands an open task out again
  // when the answer did not arrive; handling it twice would fail (the
  // session has moved on) or, for a fit task, mask a second update with the
  // same masks, which would reveal the difference of the two. So it gets
  // the same answer again.
  std::string secagg_task_id_;
  // The last serving version judged (refused, installed or unverifiable).
  int64_t serving_judged_ = 0;
  absl::StatusOr<v1::SecAggClientMessage> secagg_answer_;
  // A client_state.pb was read or written: an empty state must replace it.
  bool kept_state_ = false;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_AGENT_H_
