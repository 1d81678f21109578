#include "server/federation_server.h"

#include <cstdio>
#include <filesystem>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/status.h"
#include "server/checkpoint.h"
#include "server/client_manager.h"
#include "server/grpc_client_proxy.h"
#include "server/grpc_service.h"
#include "server/model_store.h"

namespace shoal {
namespace {

std::string NewRunId() {
  std::random_device device;
  return absl::StrCat(absl::Hex((uint64_t{device()} << 32) | device(), absl::kZeroPad16));
}

// The files a run leaves in OUTPUT_DIR besides its checkpoint.
constexpr const char* kRunFiles[] = {"metrics.json", "metrics.csv"};

// PreviousRunFiles names what an earlier run left in `output_dir` (model
// versions, metrics), relative to it; empty for a new directory.
std::vector<std::string> PreviousRunFiles(const std::string& output_dir,
                                          const std::string& model_dir) {
  std::vector<std::string> found;
  absl::StatusOr<ModelRecord> latest = ReadModelRecord(model_dir);
  if (!absl::IsNotFound(latest.status())) {
    found.push_back(latest.ok() ? absl::StrCat("models/ (up to version ", latest->version, ")")
                                : std::string("models/latest.json"));
  }
  for (const char* name : kRunFiles) {
    std::error_code ec;
    if (std::filesystem::exists(absl::StrCat(output_dir, "/", name), ec)) found.push_back(name);
  }
  return found;
}

// FindCheckpoint returns the checkpoint to resume from, if OUTPUT_DIR holds
// one of this run; an error when it holds one of another config or an
// unreadable one, or a previous run's models or metrics without a
// checkpoint (starting over silently would cut the history short and mix
// two runs' model versions). `fresh` discards the checkpoint, the models
// and the metrics.
absl::StatusOr<std::optional<Checkpoint>> FindCheckpoint(bool fresh, const std::string& output_dir,
                                                         const std::string& dir,
                                                         const RunIdentity& run) {
  constexpr char kHint[] =
      "pass --fresh to discard the checkpoint and start over, or use another --output-dir";
  const std::string model_dir = output_dir + "/models";
  if (fresh) {
    SHOAL_RETURN_IF_ERROR(RemoveCheckpoint(dir));
    const std::vector<std::string> removed = RemoveModelVersionsAfter(model_dir, -1);
    std::remove((model_dir + "/latest.json").c_str());
    for (const char* name : kRunFiles) std::remove(absl::StrCat(output_dir, "/", name).c_str());
    spdlog::info("--fresh: starting over in {} (checkpoint, {} model files and metrics discarded)",
                 output_dir, removed.size());
    return std::nullopt;
  }
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(dir);
  if (absl::IsNotFound(checkpoint.status())) {
    const std::vector<std::string> previous = PreviousRunFiles(output_dir, model_dir);
    if (previous.empty()) return std::nullopt;
    return absl::FailedPreconditionError(absl::StrCat(
        output_dir, " holds a previous run (", absl::StrJoin(previous, ", "),
        ") but no checkpoint (", dir, "/", kCheckpointFile,
        " is missing), so that run cannot be resumed: restore the checkpoint folder to resume "
        "it, pass --fresh to discard its models and metrics and start over, or use another "
        "--output-dir"));
  }
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat(checkpoint.status().message(), "; ", kHint));
  }
  if (checkpoint->run.config_fingerprint != run.config_fingerprint) {
    std::vector<std::string> keys = ConfigDifferences(checkpoint->run.config, run.config);
    if (keys.size() > 10) {
      const size_t more = keys.size() - 10;
      keys.resize(10);
      keys.push_back(absl::StrCat("and ", more, " more"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint in ", dir, " (run '", checkpoint->run.name, "', after round ",
        checkpoint->round, ", of ", checkpoint->created_at,
        ") was written with a different config: ", absl::StrJoin(keys, ", "), " differ; ", kHint));
  }
  return *std::move(checkpoint);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FederationHost>> FederationHost::Start(
    FederationHostOptions options) {
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateListenAddress(options.address), "address"));
  std::unique_ptr<FederationHost> self(new FederationHost());
  self->options_ = std::move(options);
  const FederationHostOptions& o = self->options_;
  self->epoch_ = std::make_shared<ServerEpoch>();
  self->clients_ = std::make_unique<ClientManager>();
  FederationServiceOptions service_options;
  service_options.epoch = self->epoch_;
  service_options.access.require_certificate = o.tls != nullptr;
  if (o.tls != nullptr) service_options.access.revoked_file = o.revoked_file;
  service_options.serving = o.serving;
  service_options.rollout = o.rollout;
  self->service_ =
      std::make_unique<FederationService>(service_options, self->clients_.get(), nullptr);
  std::vector<grpc::Service*> services = {self->service_.get()};
  services.insert(services.end(), o.services.begin(), o.services.end());
  SHOAL_ASSIGN_OR_RETURN(self->grpc_, GrpcServer::Start(o.address, services, o.tls.get(), o.rpc_observer));
  return self;
}

FederationHost::~FederationHost() { Shutdown(); }

int FederationHost::port() const { return grpc_ != nullptr ? grpc_->port() : 0; }

std::map<std::string, FleetServing> FederationHost::fleet() const { return service_->Fleet(); }

std::vector<ClientStatus> FederationServer::clients() const {
  return host_ != nullptr ? host_->clients()->Statuses() : std::vector<ClientStatus>{};
}

size_t FederationServer::live_clients() const {
  return host_ != nullptr ? host_->clients()->LiveClientIds().size() : 0;
}

void FederationHost::Shutdown() {
  if (grpc_ != nullptr) grpc_->Shutdown();
}

FederationServer::FederationServer() = default;

std::map<std::string, FleetServing> FederationServer::fleet() const {
  return host_ != nullptr ? host_->fleet() : std::map<std::string, FleetServing>();
}

FederationServer::~FederationServer() {
  if (own_host_ != nullptr) own_host_->Shutdown();
  // A shared host stops offering this run's models; its devices stay.
  if (own_host_ == nullptr && host_ != nullptr && store_ != nullptr) {
    host_->service()->SetRun("", nullptr);
  }
}

absl::StatusOr<std::unique_ptr<FederationServer>> FederationServer::Create(
    FederationServerOptions options, Strategy* strategy, Parameters initial) {
  if (strategy == nullptr) return absl::InvalidArgumentError("no strategy");
  if (options.model_spec.empty()) return absl::InvalidArgumentError("no model spec");
  if (!options.fingerprint_config.is_object()) {
    return absl::InvalidArgumentError("fingerprint_config is not a JSON object");
  }
  if (options.host == nullptr) {
    SHOAL_RETURN_IF_ERROR(Annotate(ValidateListenAddress(options.address), "address"));
  }
  std::unique_ptr<FederationServer> self(new FederationServer());
  self->options_ = std::move(options);
  const FederationServerOptions& o = self->options_;

  // Resume when OUTPUT_DIR holds a checkpoint of this run.
  const std::string checkpoint_dir = o.output_dir + "/checkpoint";
  RunIdentity run;
  run.name = o.name;
  run.run_id = NewRunId();
  run.config = o.fingerprint_config;
  run.config_fingerprint = ConfigFingerprint(run.config);
  SHOAL_ASSIGN_OR_RETURN(std::optional<Checkpoint> checkpoint,
                         FindCheckpoint(o.fresh, o.output_dir, checkpoint_dir, run));
  if (checkpoint) {
    run.run_id = checkpoint->run.run_id;
    PreviousRun& previous = self->previous_.emplace();
    previous.round = checkpoint->round;
    previous.created_at = checkpoint->created_at;
    previous.stop_reason = checkpoint->stop_reason;
    previous.checkpoint_dir = checkpoint_dir;
    previous.finished = checkpoint->Finished(o.coordinator.num_rounds);
    if (previous.finished) {
      self->finished_history_ = checkpoint->history;
      return self;
    }
    spdlog::info("resuming run '{}' after round {} of {} (checkpoint of {})", o.name,
                 checkpoint->round, o.coordinator.num_rounds, checkpoint->created_at);
  }
  if (o.signer != nullptr) {
    spdlog::info("signing every model version with key {}", o.signer->key_id());
  }
  const int64_t num_parameters = initial.NumElements();
  SHOAL_RETURN_IF_ERROR(MakeDirectories(o.output_dir));
  SHOAL_ASSIGN_OR_RETURN(self->store_,
                         ModelStore::Open(o.output_dir + "/models", o.model_spec, o.signer));
  self->store_->set_delta_downloads(o.delta_downloads);

  if (o.host != nullptr) {
    self->host_ = o.host;
  } else {
    FederationHostOptions host;
    host.address = o.address;
    host.tls = o.tls;
    host.revoked_file = o.revoked_file;
    host.serving = o.serving;
    host.rollout = o.rollout;
    host.rpc_observer = o.rpc_observer;
    SHOAL_ASSIGN_OR_RETURN(self->own_host_, FederationHost::Start(std::move(host)));
    self->host_ = self->own_host_.get();
  }
  ClientManager* clients = self->host_->clients();
  if (checkpoint) {
    // Known again, but not live (sampled) until each is heard from, with
    // the example counts each declared, so the bound on what its results
    // count for holds across the restart.
    for (const std::string& id : checkpoint->client_ids) {
      auto proxy = std::make_shared<GrpcClientProxy>(id, self->host_->epoch());
      const auto declared = checkpoint->declared_examples.find(id);
      if (declared != checkpoint->declared_examples.end()) proxy->Declare(declared->second);
      clients->AddKnown(std::move(proxy));
    }
  }
  self->host_->service()->SetRun(o.name, self->store_);
  absl::StatusOr<std::unique_ptr<Coordinator>> created =
      checkpoint
          ? Coordinator::Resume(o.coordinator, clients, strategy, self->store_.get(), *checkpoint)
          : Coordinator::Create(o.coordinator, clients, strategy, self->store_.get(),
                                std::move(initial));
  if (!created.ok() && checkpoint) {
    return Annotate(created.status(),
                    absl::StrCat("cannot resume from the checkpoint in ", checkpoint_dir,
                                 " (pass --fresh to discard it and start over)"));
  }
  SHOAL_ASSIGN_OR_RETURN(self->coordinator_, std::move(created));
  if (self->stopped_.load()) self->coordinator_->RequestStop();
  self->checkpointer_ = std::make_unique<CheckpointWriter>(
      checkpoint_dir, run, [clients] { return clients->RegisteredClients(); });
  self->coordinator_->SetCheckpointWriter(self->checkpointer_.get());
  for (RoundObserver* observer : o.observers) self->coordinator_->AddObserver(observer);
  spdlog::info(
      "run '{}': {} rounds of {} on model '{}' ({} parameters), listening on port {} "
      "({})",
      o.name, o.coordinator.num_rounds, std::string(strategy->name()), o.model_spec, num_parameters,
      self->host_->port(),
      self->host_->secure() ? "mutual TLS, clients admitted by certificate" : "PLAINTEXT");
  return self;
}

absl::StatusOr<FederationRun> FederationServer::Run() {
  FederationRun result;
  if (coordinator_ == nullptr) {  // a finished previous run
    result.history = finished_history_;
    result.stop_reason = previous_->stop_reason;
    return result;
  }
  absl::StatusOr<std::vector<RoundRecord>> history = coordinator_->Run();
  ClientManager* clients = host_->clients();
  const absl::Time linger_start = absl::Now();
  if (own_host_ != nullptr) {
    // Give clients a moment to fetch the final model and leave: live
    // clients are long-polling and hear of the end at once. Stop waiting
    // when all have left, when those remaining have been silent for 3 s
    // (dead devices), or after 15 s.
    while (clients->NumRegistered() > 0 && absl::Now() < linger_start + absl::Seconds(15)) {
      const absl::Time now = absl::Now();
      if (now - linger_start > absl::Seconds(3) &&
          clients->NumSeenSince(now - absl::Seconds(3)) == 0) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    own_host_->Shutdown();
  } else {
    // A shared host: devices fetch the final model, leave and join again
    // for the next run. Wait (up to 5 s) until each device told of the end
    // has left, so the next run's store does not replace this one's under
    // a download.
    std::map<std::string, std::shared_ptr<ClientProxy>> told;
    for (const std::string& id : clients->RegisteredIds()) told[id] = clients->Find(id);
    while (!told.empty() && absl::Now() < linger_start + absl::Seconds(5)) {
      for (auto it = told.begin(); it != told.end();) {
        it = clients->Find(it->first) != it->second ? told.erase(it) : std::next(it);
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    host_->service()->SetRun("", nullptr);
  }
  SHOAL_RETURN_IF_ERROR(history.status());
  result.history = *std::move(history);
  result.stop_reason = coordinator_->stop_reason();
  result.stopped = stopped_.load() && result.stop_reason.empty();
  result.final_model = store_->Latest();
  return result;
}

void FederationServer::Stop() {
  stopped_.store(true);
  if (coordinator_ != nullptr) coordinator_->RequestStop();
}

int FederationServer::port() const {
  return host_ != nullptr && coordinator_ != nullptr ? host_->port() : 0;
}

std::string FederationServer::model_dir() const { return options_.output_dir + "/models"; }

}  // namespace shoal
