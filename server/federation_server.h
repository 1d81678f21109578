// FederationServer: a whole Shoal server in one object, for the `shoal
// server` command and for applications that host a federation themselves.
// It owns what a run needs besides the strategy and the initial model:
// resuming from the checkpoint in the output folder (or refusing a
// checkpoint of another config), the model store, the client registry, the
// gRPC service, the Coordinator, the checkpoint written after every round,
// and the drain at the end (clients fetch the final model and leave).
//
// The strategy and the initial model come from the caller: building them
// (the model zoo, the test-set evaluator) is the client room's business,
// which this room does not depend on.
//
// Example:
//   FederationServerOptions options;
//   options.name = "my-run";
//   options.address = "127.0.0.1:0";  // port 0: a free port, see port()
//   options.output_dir = "/tmp/my-run";
//   options.model_spec = "2nn-1x28x28-10";
//   SHOAL_ASSIGN_OR_RETURN(auto server,
//       FederationServer::Create(options, strategy.get(), std::move(initial)));
//   ... start clients against server->port() ...
//   SHOAL_ASSIGN_OR_RETURN(FederationRun run, server->Run());
#ifndef SHOAL_SERVER_FEDERATION_SERVER_H_
#define SHOAL_SERVER_FEDERATION_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model_dir.h"
#include "common/parameters.h"
#include "common/signing.h"
#include "common/tls.h"
#include "server/coordinator.h"
#include "strategies/strategy.h"

namespace grpc {
class Service;
}  // namespace grpc

namespace shoal {

class ClientManager;
struct ClientStatus;
class FederationService;
class Rollout;
class ServingCatalog;

// FleetServing: what one device last reported of its serving version.
struct FleetServing {
  int64_t serving_version = 0;  // the version it serves (0: none)
  int64_t offered_version = 0;  // the last version it judged
  bool accepted = false;
  std::string reason;  // the device guard's sentence
  std::string metric;  // the guard metric ("accuracy", "rmse")
  double offered_value = 0;
  double current_value = 0;
  absl::Time at;  // when it reported
};
class GrpcServer;
class RpcObserver;
class ModelStore;
class CheckpointWriter;
struct ServerEpoch;

// FederationHostOptions: the devices' side of a server: where it listens,
// who may join, and the serving versions it offers.
struct FederationHostOptions {
  // "host:port" to listen on; port 0 picks a free port (see port()).
  std::string address = "127.0.0.1:50051";
  // Mutual TLS: null serves plaintext (loopback and tests only). With TLS,
  // devices are admitted by certificate and `revoked_file` (when not empty)
  // lists revoked client IDs.
  std::shared_ptr<const TlsMaterial> tls;
  std::string revoked_file;
  // Serving versions to offer devices on every poll (docs/lifecycle.md);
  // not owned, must outlive the host. Null: none offered.
  const ServingCatalog* serving = nullptr;
  // Staged rollout of new serving versions (server/rollout.h); not owned.
  // Null: every device is offered the catalog's newest at once.
  Rollout* rollout = nullptr;
  // Hears of every gRPC call (telemetry); not owned, outlives the host.
  RpcObserver* rpc_observer = nullptr;
  // More gRPC services on the same port (e.g. the admin service); not
  // owned, must outlive the host.
  std::vector<grpc::Service*> services;
};

// FederationHost is the part of a server that outlives a run: the port,
// the devices' registry and the service they call. A FederationServer
// makes its own for one run; `shoal serve` keeps one and trains runs over
// it one after another (FederationServerOptions::host), so devices stay
// enrolled between runs. Thread-safe.
class FederationHost {
 public:
  // Start listens on options.address. Errors: InvalidArgument for a bad
  // address, Unavailable when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<FederationHost>> Start(FederationHostOptions options);
  ~FederationHost();
  FederationHost(const FederationHost&) = delete;
  FederationHost& operator=(const FederationHost&) = delete;

  int port() const;
  ClientManager* clients() const { return clients_.get(); }
  FederationService* service() const { return service_.get(); }
  // Task IDs carry this nonce: a result for a task handed out before a
  // restart is refused, never matched to a new task.
  const std::shared_ptr<ServerEpoch>& epoch() const { return epoch_; }
  bool secure() const { return options_.tls != nullptr; }
  // Each device's last serving report.
  std::map<std::string, FleetServing> fleet() const;
  // Shutdown stops accepting calls (waiting up to 2 s for those in
  // flight). Idempotent.
  void Shutdown();

 private:
  FederationHost() = default;
  FederationHostOptions options_;
  std::shared_ptr<ServerEpoch> epoch_;
  std::unique_ptr<ClientManager> clients_;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<GrpcServer> grpc_;
};

// FederationServerOptions: everything a server needs besides the strategy
// and the initial model. The defaults run a plaintext server on
// 127.0.0.1:50051 writing to runs/shoal.
struct FederationServerOptions {
  // The run's name: in logs, in the checkpoint, and the run ID devices see.
  std::string name = "shoal";
  // "host:port" to listen on; port 0 picks a free port (see port()).
  std::string address = "127.0.0.1:50051";
  // Where models/, checkpoint/ and (for the CLI) metrics go; created if
  // missing.
  std::string output_dir = "runs/shoal";
  // The canonical model spec every version is stored and shipped under
  // (e.g. "2nn-1x28x28-10", client::ModelSpecToString).
  std::string model_spec;
  // Rounds, sampling, deadlines, target accuracy, evaluation.
  CoordinatorOptions coordinator;
  // Mutual TLS: null serves plaintext (loopback and tests only). With TLS,
  // devices are admitted by certificate and `revoked_file` (when not empty)
  // lists revoked client IDs.
  std::shared_ptr<const TlsMaterial> tls;
  std::string revoked_file;
  // Signs every stored model version; null stores them unsigned (devices
  // with a ModelVerifier then refuse them).
  std::shared_ptr<const ModelSigner> signer;
  // Send a device that holds an earlier version (one of the 4 before) the
  // change of the model's bytes from it instead of the whole model
  // (common/model_delta.h; lossless, checked by SHA-256 and signature on
  // the device). Config: compression.download "delta".
  bool delta_downloads = false;
  // The part of the configuration a resumed run must share with the run
  // that wrote the checkpoint (a JSON object; for `shoal server`, the config
  // file without "rounds", "server" and "simulation"). A checkpoint whose
  // fingerprint differs is refused, naming the keys that differ.
  nlohmann::json fingerprint_config = nlohmann::json::object();
  // Discard the checkpoint, model versions and metrics files in output_dir
  // and start over, instead of resuming (or refusing a previous run).
  bool fresh = false;
  // Told about every round, in order, after the server's own bookkeeping;
  // not owned, must outlive Run().
  std::vector<RoundObserver*> observers;
  // Serving versions to offer devices on every poll (docs/lifecycle.md);
  // not owned, must outlive the server. Null: none offered.
  const ServingCatalog* serving = nullptr;
  // Staged rollout of new serving versions (server/rollout.h); not owned.
  // Null: every device is offered the catalog's newest at once.
  Rollout* rollout = nullptr;
  // Hears of every gRPC call (telemetry); not owned, outlives the server.
  RpcObserver* rpc_observer = nullptr;
  // A host that outlives this run (not owned). Null: the server starts its
  // own from address, tls, revoked_file, serving, rollout and rpc_observer, and shuts it
  // down at the end of Run(). Set: those five are the host's, and Run()
  // leaves it listening, with the devices enrolled, for the next run.
  FederationHost* host = nullptr;
};

// FederationRun: what Run() produced.
struct FederationRun {
  std::vector<RoundRecord> history;  // [0] is the initial model's evaluation
  // Why the run ended before its last round (target accuracy, the
  // strategy), empty otherwise; a Stop() leaves it empty.
  std::string stop_reason;
  bool stopped = false;                    // Stop() ended it; resumable
  std::optional<ModelRecord> final_model;  // the newest stored version
};

// PreviousRun: the checkpoint a server resumed from, if any.
struct PreviousRun {
  uint32_t round = 0;       // the last round it completed
  std::string created_at;   // when the checkpoint was written (RFC 3339)
  std::string stop_reason;  // non-empty when it ended for good
  std::string checkpoint_dir;
  // Nothing is left to run with this many rounds planned: Run() returns the
  // checkpoint's history at once, without listening.
  bool finished = false;
};

// FederationServer is created once and Run() once. Thread safety: Stop()
// and port() may be called from any thread (a signal watcher, the thread
// that started clients); everything else from the thread that owns it.
class FederationServer {
 public:
  // Create checks `options`, finds the checkpoint in options.output_dir to
  // resume from (unless options.fresh), opens the model store, starts the
  // gRPC service (clients may join from now on) and creates the
  // Coordinator, resumed or starting from `initial`. `strategy` is not
  // owned and must outlive the server; on resume it must be freshly built
  // with the parameters of the run that wrote the checkpoint.
  // Errors:
  //   InvalidArgument: bad options (address, model spec, rounds...), or a
  //     strategy that does not fit them.
  //   FailedPrecondition: output_dir holds a checkpoint of another config,
  //     or a previous run's models or metrics without a checkpoint (the
  //     message says how to go on: fresh, or another folder).
  //   Unavailable / Internal: the port cannot be bound, files cannot be
  //     written.
  static absl::StatusOr<std::unique_ptr<FederationServer>> Create(FederationServerOptions options,
                                                                  Strategy* strategy,
                                                                  Parameters initial);

  ~FederationServer();

  // fleet returns each device's last serving report (what it serves, what
  // it did with the version offered). Thread-safe.
  std::map<std::string, FleetServing> fleet() const;
  FederationServer(const FederationServer&) = delete;
  FederationServer& operator=(const FederationServer&) = delete;

  // Run runs the remaining rounds (all of them for a new run), writing a
  // checkpoint after each, then lets clients fetch the final model and
  // leave (up to 15 s; 3 s of silence ends the wait early) and shuts the
  // service down. Blocks; call once. For a finished previous run it
  // returns that run's history without training.
  // Errors: those of the round engine (a model that cannot be stored,
  // a strategy that fails); the service is shut down on every way out.
  absl::StatusOr<FederationRun> Run();

  // Stop ends the run after the round in progress (at once while waiting
  // for clients); the checkpoint lets a later server resume it. Safe from
  // any thread, before or during Run().
  void Stop();

  // The port the service listens on (0 for a finished previous run, which
  // does not listen).
  int port() const;
  // The devices live now (heard from within the liveness timeout).
  // Thread-safe.
  size_t live_clients() const;
  // clients returns every registered device's status. Thread-safe.
  std::vector<ClientStatus> clients() const;
  // The checkpoint this server resumed from, or null for a new run.
  const PreviousRun* previous_run() const { return previous_ ? &*previous_ : nullptr; }
  // The model store's folder (output_dir/models).
  std::string model_dir() const;

 private:
  FederationServer();

  FederationServerOptions options_;
  std::optional<PreviousRun> previous_;
  std::vector<RoundRecord> finished_history_;  // when previous_->finished
  std::atomic<bool> stopped_{false};
  std::shared_ptr<ModelStore> store_;
  std::unique_ptr<FederationHost> own_host_;  // when options_.host is null
  FederationHost* host_ = nullptr;            // own_host_ or options_.host
  std::unique_ptr<CheckpointWriter> checkpointer_;
  std::unique_ptr<Coordinator> coordinator_;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_FEDERATION_SERVER_H_
