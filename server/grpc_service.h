// FederationService: the gRPC face of the server (shoal.v1.Federation). A
// thin adapter: it validates what arrives, moves chunks, and hands tasks and
// results between devices and their GrpcClientProxy. Round logic lives in
// the Coordinator.
#ifndef SHOAL_SERVER_GRPC_SERVICE_H_
#define SHOAL_SERVER_GRPC_SERVICE_H_

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/tls.h"
#include "server/access_control.h"
#include "server/client_manager.h"
#include "server/federation_server.h"
#include "server/grpc_client_proxy.h"
#include "server/model_store.h"
#include "server/rollout.h"
#include "server/serving_catalog.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal {

struct FederationServiceOptions {
  // How long a Poll waits for a task before answering "wait". Shorter than
  // any NAT idle timeout a device is likely to sit behind.
  absl::Duration max_poll_wait = absl::Seconds(10);
  // A run ID clients see on Join, for logs (SetRun changes it).
  std::string run_id;
  // Shared by the proxies of joining clients (task IDs unique across server
  // restarts); null: the process's.
  std::shared_ptr<ServerEpoch> epoch;
  // Who may call, and how much (identity, revocation, per-client limits).
  AccessControlOptions access;
  // The federation's serving versions, offered to devices on every Poll
  // (not owned; null: none are offered).
  const ServingCatalog* serving = nullptr;
  // When set, which version each device is offered (a canary stage) and
  // where its reports go; not owned. Null: every device is offered the
  // catalog's newest.
  Rollout* rollout = nullptr;
};


// Thread-safe. Does not own the ClientManager or the ModelStore given to
// the constructor.
// FederationService serves the devices. Poll, the long poll every idle
// device keeps open, is a callback method (gRPC's callback API): a waiting
// poll holds no thread, only a PollWaiter that its client's proxy fires
// when a task is there and a timer fires at its deadline. The other
// methods are short and synchronous.
class PollTimer;
class FederationService final
    : public v1::Federation::WithCallbackMethod_Poll<v1::Federation::Service> {
 public:
  // `store` may be null: no run yet (SetRun), and devices wait.
  FederationService(FederationServiceOptions options, ClientManager* clients,
                    ModelStore* store);
  ~FederationService() override;

  // SetRun makes `store` the run whose models devices download, and
  // `run_id` the ID they see on Join: a long-running federation (shoal
  // serve) trains one run after another over the same service and devices.
  // Null: between runs (model downloads are refused, polls wait). Calls in
  // flight keep the store they started with.
  void SetRun(const std::string& run_id, std::shared_ptr<ModelStore> store);

  grpc::Status Join(grpc::ServerContext* ctx, const v1::JoinRequest* req,
                    v1::JoinResponse* resp) override;
  grpc::ServerUnaryReactor* Poll(grpc::CallbackServerContext* ctx, const v1::PollRequest* req,
                                 v1::Task* task) override;
  grpc::Status DownloadAux(grpc::ServerContext* ctx, const v1::DownloadAuxRequest* req,
                           grpc::ServerWriter<v1::Chunk>* writer) override;
  grpc::Status DownloadModel(grpc::ServerContext* ctx,
                             const v1::DownloadModelRequest* req,
                             grpc::ServerWriter<v1::Chunk>* writer) override;
  // DownloadModelCode streams the TorchScript code the store keeps under
  // `req->sha256()` (ModelVersion.code_sha256). NOT_FOUND for code the store
  // does not hold (a built-in model has none).
  grpc::Status DownloadModelCode(grpc::ServerContext* ctx, const v1::DownloadModelCodeRequest* req,
                                 grpc::ServerWriter<v1::Chunk>* writer) override;
  grpc::Status SubmitFit(grpc::ServerContext* ctx,
                         grpc::ServerReader<v1::SubmitFitRequest>* reader,
                         v1::SubmitResponse* resp) override;
  grpc::Status SubmitEvaluate(grpc::ServerContext* ctx, const v1::EvaluateResult* req,
                              v1::SubmitResponse* resp) override;
  // SubmitSecAgg answers an open secure-aggregation task. FAILED_PRECONDITION
  // when the task is not open (answered, timed out, replaced); otherwise the
  // round's verdict on the message.
  grpc::Status SubmitSecAgg(grpc::ServerContext* ctx, const v1::SecAggSubmission* req,
                            v1::SubmitResponse* resp) override;
  grpc::Status Leave(grpc::ServerContext* ctx, const v1::LeaveRequest* req,
                     v1::LeaveResponse* resp) override;
  // ReportServing records what a device serves and what it did with the
  // serving version it was offered (FleetServing).
  grpc::Status ReportServing(grpc::ServerContext* ctx, const v1::ServingReport* req,
                             v1::SubmitResponse* resp) override;

  // Fleet returns each reporting device's last serving report, by client ID.
  std::map<std::string, FleetServing> Fleet() const;

 private:
  // Admit bounds the request's strings (ValidateRequestStrings), validates
  // `id` and admits the call (access_control.h). Every RPC starts with it.
  absl::StatusOr<AccessControl::Ticket> Admit(
      grpc::ServerContextBase* ctx, const google::protobuf::Message& request,
      const std::string& id);
  // AnswerPoll fills `task` with what `proxy` has for its device now (a
  // Wait task when nothing): the exact model bytes it names, and the
  // serving version on offer.
  void AnswerPoll(GrpcClientProxy& proxy, v1::Task* task);
  class PendingPoll;
  friend class PollTimer;
  // DropRevoked fails the open task of each registered client in `ids` and
  // drops it from the registry, so it is no longer sampled and its round
  // does not wait for it.
  void DropRevoked(const std::vector<std::string>& ids);
  // LogRefusal logs a refused call, rate-limited: the peer decides how many.
  void LogRefusal(absl::string_view what, const std::string& peer,
                  const absl::Status& why);
  // KnownClient returns the client's proxy and records a heartbeat, or
  // NotFound/InvalidArgument for a bad or unknown ID.
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> KnownClient(const std::string& id);
  absl::Status ReceiveFit(grpc::ServerContext* ctx,
                          grpc::ServerReader<v1::SubmitFitRequest>* reader);

  const FederationServiceOptions options_;
  LogRateLimiter refusal_log_{/*lines_per_second=*/5, /*burst=*/50};
  AccessControl access_;
  ClientManager* const clients_;
  // The current run's store; null between runs.
  std::shared_ptr<ModelStore> Store() const;
  mutable absl::Mutex run_mu_;
  std::shared_ptr<ModelStore> store_ ABSL_GUARDED_BY(run_mu_);
  std::string run_id_ ABSL_GUARDED_BY(run_mu_);
  // WakeAll ends every waiting long poll, so devices hear of a new serving
  // version at once.
  void WakeAll();
  int serving_listener_ = -1;
  // Fires waiting polls at their deadlines; one thread for all of them.
  std::unique_ptr<PollTimer> poll_timer_;
  mutable absl::Mutex fleet_mu_;
  std::map<std::string, FleetServing> fleet_ ABSL_GUARDED_BY(fleet_mu_);
};

// ValidateClientId accepts 1 to 128 characters of [A-Za-z0-9._:-].
absl::Status ValidateClientId(const std::string& id);

// kMaxRequestStringBytes bounds every string field of every request (IDs,
// task IDs, error reports, metric names), nested messages and maps included.
inline constexpr size_t kMaxRequestStringBytes = 1024;

// ValidateRequestStrings checks every string field set in `request`,
// recursively, against kMaxRequestStringBytes, so no unbounded value a peer
// sends reaches an error message or the log. `bytes` fields (tensors,
// chunks, keys) are not strings and are bounded by the transfer checks.
//
// Errors: InvalidArgument naming the field and its size, never its value.
absl::Status ValidateRequestStrings(const google::protobuf::Message& request);

// RpcObserver hears of every call the gRPC server answers (a gRPC server
// interceptor feeds it): telemetry's RPC latency and bytes out. Called on
// gRPC's threads, concurrently: implementations are thread-safe and quick.
// `method` is what the peer asked for ("/shoal.v1.Federation/Poll"), so a
// peer chooses it: bound what you keep per method.
class RpcObserver {
 public:
  virtual ~RpcObserver() = default;
  // A call ended `latency` after it arrived, with `code`.
  virtual void OnCallEnd(absl::string_view method, absl::Duration latency,
                         grpc::StatusCode code) = 0;
  // A response message of `bytes` (serialized) left for a call to `method`.
  virtual void OnSent(absl::string_view method, size_t bytes) = 0;
};

// GrpcServer runs a FederationService on an address.
class GrpcServer {
 public:
  // Start listens on `address` ("127.0.0.1:0" picks a free port) with TLS
  // that requires client certificates from the CA in `tls` (mutual TLS), or
  // in plaintext when `tls` is null. Any one message a client sends is
  // capped at kMaxRequestBytes.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const std::string& address, grpc::Service* service, const TlsMaterial* tls);
  // Start with several services on one port (the federation's and the
  // admin's); none owned.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const std::string& address, const std::vector<grpc::Service*>& services,
      const TlsMaterial* tls, RpcObserver* observer = nullptr);
  ~GrpcServer();

  int port() const { return port_; }
  // Shutdown stops accepting calls and waits up to `grace` for calls in flight.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port)
      : server_(std::move(server)), port_(port) {}
  std::unique_ptr<grpc::Server> server_;
  int port_;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_GRPC_SERVICE_H_
