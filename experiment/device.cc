#include "experiment/device.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/agent.h"
#include "client/local_client.h"
#include "client/local_endpoint.h"
#include "client/serving_runtime.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/parameters.h"
#include "common/status.h"
#include "common/tls.h"
#include "experiment/client_side.h"
#include "experiment/experiment_config.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal {

struct Device::Impl {
  std::string id;
  ClientSide side;
  std::unique_ptr<client::ServingRuntime> runtime;
  std::unique_ptr<client::LocalEndpoint> endpoint;
  client::AgentOptions agent_options;

  absl::Mutex mu;
  std::atomic<bool> stopping{false};
  client::Agent* agent ABSL_GUARDED_BY(mu) = nullptr;
  client::AgentStats past ABSL_GUARDED_BY(mu);  // of the runs over
  std::thread thread;

  // Loop joins run after run until Stop: a run's end, or a server that
  // cannot be reached, only means waiting for the next.
  void Loop() {
    while (!stopping.load()) {
      client::Agent current(agent_options, side.local.get());
      {
        absl::MutexLock lock(&mu);
        agent = &current;
        if (stopping.load()) current.Stop();
      }
      absl::Status run = current.Run();
      {
        absl::MutexLock lock(&mu);
        agent = nullptr;
        past = client::Combined(past, current.stats());
      }
      if (stopping.load()) break;
      if (!run.ok() && !absl::IsUnavailable(run)) {
        spdlog::warn("run over with an error ({}); joining again", std::string(run.message()));
      } else {
        spdlog::info("run over ({}); serving version {}; waiting for the next run",
                     run.ok() ? "done" : std::string(run.message()), runtime->version());
      }
      for (int i = 0; i < 10 && !stopping.load(); ++i) absl::SleepFor(absl::Milliseconds(100));
    }
  }
};

Device::Device(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Device::~Device() { Stop(); }

absl::StatusOr<std::unique_ptr<Device>> Device::Open(const DeviceOptions& options) {
  if (options.pki_dir.empty()) {
    return absl::InvalidArgumentError(
        "pki_dir is empty: a device needs its bundle from `shoal certs client` (serving "
        "versions are signed, and the server admits devices by certificate)");
  }
  if (options.state_dir.empty()) return absl::InvalidArgumentError("state_dir is empty");
  if (options.config.empty()) return absl::InvalidArgumentError("config is empty");
  auto impl = std::make_unique<Impl>();
  SHOAL_ASSIGN_OR_RETURN(ExperimentConfig config, LoadExperimentConfig(options.config));
  SHOAL_ASSIGN_OR_RETURN(TlsMaterial tls, Annotate(LoadClientTls(options.pki_dir), "pki_dir"));
  impl->id = tls.common_name;
  SHOAL_ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelVerifier> verifier,
      Annotate(ModelVerifier::Load(options.pki_dir + "/model-signing.pub"), "pki_dir"));
  SHOAL_ASSIGN_OR_RETURN(impl->side,
                         PrepareClientSide(config, {options.data_dir, options.partition,
                                                    options.compute, options.time_budget,
                                                    options.memory_budget_bytes}));
  spdlog::info("device '{}': {}", impl->id, impl->side.description);

  client::ServingRuntimeOptions serving;
  serving.store = {options.state_dir + "/serving", verifier, options.keep};
  serving.task = config.task;
  if (!config.coordinator.personal.empty()) {
    // The device's own personal tensors, kept from earlier rounds, in the
    // model it serves (read here, before the agent, so the first version
    // served from disk has them too).
    client::LocalClient* local = impl->side.local.get();
    absl::StatusOr<client::ClientAlgorithmState> kept = client::ReadClientState(options.state_dir);
    if (kept.ok()) local->set_algorithm_state(*std::move(kept));
    serving.personalize = [local](const Parameters& global) {
      return local->PersonalModel(global);
    };
  }
  SHOAL_ASSIGN_OR_RETURN(impl->runtime,
                         client::ServingRuntime::Open(serving, impl->side.holdout));
  if (!options.endpoint.empty()) {
    SHOAL_ASSIGN_OR_RETURN(impl->endpoint,
                           Annotate(client::LocalEndpoint::Start({options.endpoint},
                                                                 &impl->runtime->serving()),
                                    "endpoint"));
    spdlog::info("serving predictions on {} ({})", options.endpoint,
                 impl->runtime->version() > 0
                     ? absl::StrCat("serving version ", impl->runtime->version())
                     : std::string("no serving version yet"));
  }
  client::AgentOptions& agent = impl->agent_options;
  agent.server_address = options.server.empty() ? config.address : options.server;
  agent.client_id = impl->id;
  agent.tls = std::make_shared<const TlsMaterial>(std::move(tls));
  agent.model_verifier = verifier;
  agent.state_dir = options.state_dir;
  agent.model_code = impl->side.model_code;
  agent.seed = impl->side.data_seed;
  agent.serving = impl->runtime.get();
  agent.give_up_after = absl::ZeroDuration();  // a device waits for its server
  agent.may_train = options.may_train;
  return std::unique_ptr<Device>(new Device(std::move(impl)));
}

void Device::Start() {
  absl::MutexLock lock(&impl_->mu);
  if (impl_->thread.joinable() || impl_->stopping.load()) return;
  Impl* impl = impl_.get();
  impl_->thread = std::thread([impl] { impl->Loop(); });
}

void Device::Stop() {
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
    if (impl_->agent != nullptr) impl_->agent->Stop();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

absl::StatusOr<DevicePrediction> Device::Predict(const at::Tensor& inputs) const {
  SHOAL_ASSIGN_OR_RETURN(client::Served served, impl_->runtime->serving().Predict(inputs));
  return DevicePrediction{std::move(served.outputs), served.version};
}

int64_t Device::serving_version() const { return impl_->runtime->version(); }

client::AgentStats Device::stats() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->agent == nullptr ? impl_->past
                                 : client::Combined(impl_->past, impl_->agent->stats());
}

const std::string& Device::id() const { return impl_->id; }

absl::StatusOr<DevicePrediction> AskDevice(const std::string& endpoint, const at::Tensor& inputs,
                                           int64_t timeout_ms) {
  SHOAL_RETURN_IF_ERROR(client::ValidateLocalAddress(endpoint));
  auto stub = v1::LocalPredict::NewStub(
      grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  v1::PredictRequest request;
  TensorToProto("inputs", inputs.to(at::kFloat).contiguous(), request.mutable_inputs());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  v1::PredictResponse response;
  SHOAL_RETURN_IF_ERROR(FromGrpcStatus(stub->Predict(&ctx, request, &response)));
  SHOAL_ASSIGN_OR_RETURN(at::Tensor outputs, TensorFromProto(response.outputs()));
  return DevicePrediction{std::move(outputs), response.serving_version()};
}

int Device::endpoint_port() const {
  return impl_->endpoint != nullptr ? impl_->endpoint->port() : 0;
}

}  // namespace shoal
