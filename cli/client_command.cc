#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "cli/telemetry.h"
#include "cli/transport.h"
#include "client/agent.h"
#include "client/may_train.h"
#include "common/logging.h"
#include "common/signing.h"
#include "common/status.h"
#include "experiment/client_side.h"
#include "experiment/device.h"
#include "experiment/experiment_config.h"
#include "experiment/run_metrics.h"
#include "telemetry/process_metrics.h"

namespace shoal::cli {
namespace {

absl::Duration TimeBudget(const ClientFlags& flags) {
  return flags.time_budget_s > 0 ? absl::Seconds(flags.time_budget_s) : absl::InfiniteDuration();
}
int64_t MemoryBudget(const ClientFlags& flags) {
  return static_cast<int64_t>(flags.memory_budget_mb * 1e6);
}
std::function<absl::Status()> MayTrain(const ClientFlags& flags) {
  std::function<absl::Status()> command, file;
  if (!flags.may_train_command.empty()) command = client::MayTrainCommand(flags.may_train_command);
  if (!flags.pause_file.empty()) file = client::PauseWhileFileExists(flags.pause_file);
  return client::BothMayTrain(std::move(file), std::move(command));
}

// DeviceMetricsListen is the device's --metrics-* flags.
MetricsListen DeviceMetricsListen(const ClientFlags& flags) {
  MetricsListen where;
  where.listen = flags.metrics_listen;
  where.token_file = flags.metrics_token_file;
  where.cert_file = flags.metrics_cert;
  where.key_file = flags.metrics_key;
  where.no_tls =
      "give --metrics-cert and --metrics-key (a certificate for the name scrapers dial), or "
      "listen on 127.0.0.1 and scrape through a tunnel";
  where.listen_name = "--metrics-listen";
  where.token_name = "--metrics-token-file";
  where.context = "--metrics-listen";
  return where;
}

// ServeAndTrain is `shoal client --serve`: a shoal::Device that serves
// predictions on flags.serve from the serving versions it keeps (from disk
// at once, also with no server), takes part in every run it can reach, and
// stays up between runs until SIGTERM or SIGINT.
absl::Status ServeAndTrain(const ClientFlags& flags, const std::string& state_dir,
                           int* exit_code) {
  SHOAL_RETURN_IF_ERROR(InstallStopSignalHandlers());
  DeviceOptions options;
  options.config = flags.config;
  options.data_dir = flags.data_dir;
  options.partition = flags.partition;
  options.server = flags.server;
  options.pki_dir = flags.pki_dir;
  options.state_dir = state_dir;
  options.endpoint = flags.serve;
  options.compute = flags.device;
  options.time_budget = TimeBudget(flags);
  options.memory_budget_bytes = MemoryBudget(flags);
  options.may_train = MayTrain(flags);
  absl::StatusOr<std::unique_ptr<Device>> device = Device::Open(options);
  if (!device.ok()) {
    // The option names are the flags'.
    std::string message(device.status().message());
    if (absl::StartsWith(message, "endpoint")) message = "--serve" + message.substr(8);
    return absl::Status(device.status().code(), message);
  }
  std::unique_ptr<telemetry::Endpoint> endpoint;  // stops before the device goes
  if (!flags.metrics_listen.empty()) {
    Device* live = device->get();
    SHOAL_ASSIGN_OR_RETURN(
        endpoint,
        StartMetricsEndpoint(DeviceMetricsListen(flags),
                             {DeviceMetrics([live] { return live->stats(); },
                                            [live] { return live->serving_version(); }),
                              telemetry::ProcessMetrics()}));
  }
  *exit_code = 1;
  (*device)->Start();
  absl::Notification stop;
  int signal = 0;
  {
    StopOnSignal on_signal([&stop] { stop.Notify(); });
    stop.WaitForNotification();
    signal = on_signal.received();
  }
  (*device)->Stop();
  spdlog::info("stopped by signal {}; serving version {}", signal, (*device)->serving_version());
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

  const std::string state_dir =
      flags.state_dir.empty() ? absl::StrCat(config.output_dir, "/clients/", id) : flags.state_dir;
  if (!flags.serve.empty()) return ServeAndTrain(flags, state_dir, exit_code);
  SHOAL_ASSIGN_OR_RETURN(ClientSide side,
                         PrepareClientSide(config, {flags.data_dir, flags.partition, flags.device,
                                                    TimeBudget(flags), MemoryBudget(flags)}));
  spdlog::info("{}", side.description);

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
  agent_options.state_dir = state_dir;
  agent_options.model_code = std::move(side.model_code);
  agent_options.seed = side.data_seed;
  agent_options.may_train = MayTrain(flags);
  client::Agent agent(agent_options, side.local.get());
  std::unique_ptr<telemetry::Endpoint> endpoint;  // stops before the agent goes
  if (!flags.metrics_listen.empty()) {
    SHOAL_ASSIGN_OR_RETURN(
        endpoint,
        StartMetricsEndpoint(DeviceMetricsListen(flags),
                             {DeviceMetrics([&agent] { return agent.stats(); }),
                              telemetry::ProcessMetrics()}));
  }
  *exit_code = 1;
  SHOAL_RETURN_IF_ERROR(agent.Run());
  const client::AgentStats stats = agent.stats();
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
    PrintCommandError("client", status.message());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
