#include <torch/torch.h>

#include <atomic>
#include <cstdio>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "experiment/experiment_config.h"
#include "cli/stop_signal.h"
#include "cli/transport.h"
#include "client/agent.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/data/source.h"
#include "client/data/spool.h"
#include "client/local_client.h"
#include "client/local_endpoint.h"
#include "client/model.h"
#include "client/serving_runtime.h"
#include "client/trainer.h"
#include "common/logging.h"
#include "common/signing.h"
#include "common/status.h"

namespace shoal::cli {
namespace {

// LoadClientData loads the client's examples: its own data (--data-dir, in
// the config's format) or its partition of the config's data; in memory, or
// spooled to disk and read a batch at a time (data.stream). Also returns
// the model spec shaped by the data as loaded (before partitioning, so every
// client of a run agrees with the server).
absl::StatusOr<std::pair<std::shared_ptr<const client::ExampleSource>, client::ModelSpec>>
LoadClientData(const ClientFlags& flags, const ExperimentConfig& config) {
  client::DataOptions data = config.data;
  if (!flags.data_dir.empty()) data.dir = flags.data_dir;
  if (data.stream) {
    spdlog::info("reading the training data into a spool file in {} (data.stream)",
                 data.spool_dir.empty() ? client::DefaultSpoolDir() : data.spool_dir);
  }
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const client::ExampleSource> all,
                         client::OpenData(data, client::Split::kTrain,
                                          client::Task(config.task), config.num_classes));
  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, ResolveModel(config, *all));
  if (!flags.data_dir.empty()) return std::make_pair(std::move(all), std::move(spec));
  if (flags.partition >= config.partition.num_partitions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--partition ", flags.partition, " is out of range: data.num_partitions is ",
        config.partition.num_partitions));
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> parts,
                         client::Partition(all->targets(), config.partition));
  return std::make_pair(all->Subset(parts[flags.partition]), std::move(spec));
}

// ServeAndTrain is `shoal client --serve`: the device serves predictions on
// flags.serve from the serving versions it keeps (from disk at once, also
// with no server), takes part in every run it can reach, and stays up
// between runs until SIGTERM or SIGINT.
absl::Status ServeAndTrain(const ClientFlags& flags, const ExperimentConfig& config,
                           client::AgentOptions agent_options,
                           std::shared_ptr<const client::ExampleSource> guard_data,
                           client::LocalClient* local, int* exit_code) {
  SHOAL_RETURN_IF_ERROR(InstallStopSignalHandlers());
  client::ServingRuntimeOptions serving_options;
  serving_options.store = {agent_options.state_dir + "/serving", agent_options.model_verifier, 2};
  serving_options.task = config.task;
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::ServingRuntime> runtime,
                         client::ServingRuntime::Open(serving_options, std::move(guard_data)));
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<client::LocalEndpoint> endpoint,
      Annotate(client::LocalEndpoint::Start({flags.serve}, &runtime->serving()), "--serve"));
  spdlog::info("serving predictions on {} ({})", flags.serve,
               runtime->version() > 0 ? absl::StrCat("serving version ", runtime->version())
                                      : std::string("no serving version yet"));
  agent_options.serving = runtime.get();
  agent_options.give_up_after = absl::ZeroDuration();  // a device waits for its server
  *exit_code = 1;
  std::atomic<bool> stopping{false};
  std::atomic<client::Agent*> current{nullptr};
  StopOnSignal stop([&] {
    stopping = true;
    if (client::Agent* agent = current.load()) agent->Stop();
  });
  while (!stopping.load()) {
    client::Agent agent(agent_options, local);
    current = &agent;
    if (stopping.load()) agent.Stop();
    absl::Status run = agent.Run();
    current = nullptr;
    if (stopping.load()) break;
    if (!run.ok() && !absl::IsUnavailable(run)) return run;
    spdlog::info("run over ({}); serving version {} on {}; waiting for the next run",
                 run.ok() ? "done" : std::string(run.message()), runtime->version(), flags.serve);
    absl::SleepFor(absl::Seconds(1));
  }
  spdlog::info("stopped by signal {}; serving version {}", stop.received(), runtime->version());
  *exit_code = 0;
  return absl::OkStatus();
}

absl::Status RunClient(const ClientFlags& flags, int* exit_code) {
  *exit_code = 2;
  ExperimentConfig config;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(config, LoadExperimentConfig(flags.config));
  }
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const TlsMaterial> tls,
                         LoadTransport(Side::kClient, flags.pki_dir, flags.insecure_plaintext));
  // Under mutual TLS the certificate names the client; the server refuses
  // any other ID, so a mismatch is caught here, before training.
  if (tls != nullptr && !flags.id.empty() && flags.id != tls->common_name) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--id '", flags.id, "' differs from the name in ", flags.pki_dir, "/client.pem ('",
        tls->common_name, "'): the server admits a device only under its certificate's name"));
  }
  const std::string id =
      !flags.id.empty()        ? flags.id
      : tls != nullptr         ? tls->common_name
      : flags.partition >= 0   ? absl::StrCat("client-", flags.partition)
                               : std::string("client");
  SHOAL_RETURN_IF_ERROR(InitLogging(id, flags.log_level));
  // Several clients often share a machine: one intra-op thread each unless
  // told otherwise, so they do not oversubscribe the cores.
  client::SetComputeThreads(flags.threads);

  // A client's own data (no partition) counts as client -1.
  const uint64_t data_seed = client::ClientSeed(config.seed, static_cast<uint64_t>(flags.partition));
  SHOAL_ASSIGN_OR_RETURN(auto loaded, LoadClientData(flags, config));
  auto [train, holdout] =
      client::SplitClientData(*loaded.first, config.holdout_fraction, data_seed);
  if (train->size() == 0) {
    return absl::FailedPreconditionError("this client has no training examples");
  }
  spdlog::info("{} training and {} held-out examples{}", train->size(), holdout->size(),
               flags.data_dir.empty()
                   ? absl::StrCat(" (partition ", flags.partition, " of ",
                                  config.partition.num_partitions, ", ",
                                  client::PartitionSchemeName(config.partition.scheme), ")")
                   : absl::StrCat(" from ", flags.data_dir));

  // Read once: the bytes the agent compares with the server's code are the
  // bytes that run.
  SHOAL_ASSIGN_OR_RETURN(ModelCode model_code,
                         ReadModelCode(client::ModelSpecToString(loaded.second)));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                         client::CreateModelFromCode(model_code, config.seed));
  client::TrainerOptions trainer_options;
  trainer_options.device = flags.device;
  trainer_options.seed = data_seed;
  trainer_options.task = config.task;
  SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer, client::Trainer::Create(trainer_options));
  model->To(c10::Device(flags.device));
  const std::shared_ptr<const client::ExampleSource> guard_data = holdout;
  client::LocalClient local(std::move(model), std::move(trainer), std::move(train),
                            std::move(holdout));

  client::AgentOptions agent_options;
  agent_options.server_address = flags.server.empty() ? config.address : flags.server;
  agent_options.client_id = id;
  agent_options.tls = tls;
  if (tls != nullptr) {
    // A device trains on and keeps only models the server signed.
    SHOAL_ASSIGN_OR_RETURN(agent_options.model_verifier,
                           Annotate(ModelVerifier::Load(flags.pki_dir + "/model-signing.pub"),
                                    "--pki-dir"));
  }
  agent_options.state_dir =
      flags.state_dir.empty() ? absl::StrCat(config.output_dir, "/clients/", id) : flags.state_dir;
  agent_options.model_code = std::move(model_code);
  agent_options.seed = data_seed;
  if (!flags.serve.empty()) {
    return ServeAndTrain(flags, config, agent_options, guard_data, &local, exit_code);
  }
  client::Agent agent(agent_options, &local);
  *exit_code = 1;
  SHOAL_RETURN_IF_ERROR(agent.Run());
  const client::AgentStats& stats = agent.stats();
  spdlog::info("done: {} round(s), {:.1f} MB down, {:.1f} MB up; newest model in {}",
               stats.rounds, stats.bytes_downloaded / 1e6, stats.bytes_uploaded / 1e6,
               agent_options.state_dir);
  *exit_code = 0;
  return absl::OkStatus();
}

}  // namespace

int RunClientCommand(const ClientFlags& flags) {
  int exit_code = 1;
  absl::Status status = RunClient(flags, &exit_code);
  if (!status.ok()) {
    std::fprintf(stderr, "shoal client: %s\n", std::string(status.message()).c_str());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
