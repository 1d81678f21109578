#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <variant>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/experiment_config.h"
#include "cli/progress_reporter.h"
#include "cli/stop_signal.h"
#include "cli/transport.h"
#include "client/data/dataset.h"
#include "client/dataset_evaluator.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/files.h"
#include "common/json.h"
#include "common/logging.h"
#include "common/net_address.h"
#include "common/signing.h"
#include "common/status.h"
#include "server/checkpoint.h"
#include "server/client_manager.h"
#include "server/coordinator.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "strategies/registry.h"

namespace shoal::cli {
namespace {

using nlohmann::json;

// FingerprintedConfig is the part of the config file a resumed run must
// share with the run that wrote the checkpoint. Left out: "rounds" (a
// restart may run more or fewer rounds), "server" (where and how this
// process runs: address, output dir, threads, transport security) and
// "simulation" (read by `shoal sim` only). Everything else changes what the
// rounds compute. The file as written, not the parsed config: a key stated
// with its default value counts as a difference.
absl::StatusOr<json> FingerprintedConfig(const std::string& config_path) {
  json config = json::object();
  if (!config_path.empty()) {
    SHOAL_ASSIGN_OR_RETURN(std::string text, ReadFile(config_path, 1 << 20));
    SHOAL_ASSIGN_OR_RETURN(config, ParseJson(text, config_path));
    if (!config.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ": not a JSON object"));
    }
  }
  for (const char* key : {"rounds", "server", "simulation"}) config.erase(key);
  return config;
}

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
// one of this run; an error (exit 2) when it holds one of another config or
// an unreadable one, or a previous run's models or metrics without a
// checkpoint (starting over silently would cut the history short and mix
// two runs' model versions). --fresh discards the checkpoint, the models
// and the metrics.
absl::StatusOr<std::optional<Checkpoint>> FindCheckpoint(const ServerFlags& flags,
                                                         const std::string& output_dir,
                                                         const std::string& dir,
                                                         const RunIdentity& run) {
  constexpr char kHint[] =
      "pass --fresh to discard the checkpoint and start over, or use another --output-dir";
  const std::string model_dir = output_dir + "/models";
  if (flags.fresh) {
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
        ") was written with a different config: ", absl::StrJoin(keys, ", "), " differ; ",
        kHint));
  }
  return *std::move(checkpoint);
}

absl::Status RunServer(const ServerFlags& flags, int* exit_code) {
  *exit_code = 2;  // bad input until the run starts
  SHOAL_RETURN_IF_ERROR(InstallStopSignalHandlers());
  ExperimentConfig config;
  if (!flags.config.empty()) {
    SHOAL_ASSIGN_OR_RETURN(config, LoadExperimentConfig(flags.config));
  }
  if (!flags.address.empty()) {
    SHOAL_RETURN_IF_ERROR(
        Annotate(ValidateListenAddress(flags.address), "--address"));
    config.address = flags.address;
  }
  if (!flags.output_dir.empty()) config.output_dir = flags.output_dir;
  if (flags.rounds > 0) config.coordinator.num_rounds = flags.rounds;
  SHOAL_RETURN_IF_ERROR(InitLogging("server", flags.log_level));
  if (config.threads > 0) client::SetComputeThreads(static_cast<int>(config.threads));

  // Resume when OUTPUT_DIR holds a checkpoint of this run.
  const std::string checkpoint_dir = config.output_dir + "/checkpoint";
  RunIdentity run;
  run.name = config.name;
  run.run_id = NewRunId();
  SHOAL_ASSIGN_OR_RETURN(run.config, FingerprintedConfig(flags.config));
  run.config_fingerprint = ConfigFingerprint(run.config);
  SHOAL_ASSIGN_OR_RETURN(std::optional<Checkpoint> checkpoint,
                         FindCheckpoint(flags, config.output_dir, checkpoint_dir, run));
  if (checkpoint) {
    run.run_id = checkpoint->run.run_id;
    const uint32_t planned = config.coordinator.num_rounds;
    if (checkpoint->Finished(planned)) {
      const std::string what =
          checkpoint->stop_reason.empty()
              ? absl::StrCat("all ", planned, " rounds are done")
              : absl::StrCat("it ended after round ", checkpoint->round, ": ",
                             checkpoint->stop_reason);
      std::printf("Run '%s' already finished: %s (checkpoint of %s in %s). Nothing to train; "
                  "pass --fresh to start over%s.\n",
                  config.name.c_str(), what.c_str(), checkpoint->created_at.c_str(),
                  checkpoint_dir.c_str(),
                  checkpoint->stop_reason.empty() ? ", or --rounds N to run more" : "");
      std::fflush(stdout);
      *exit_code = 0;
      return absl::OkStatus();
    }
    spdlog::info("resuming run '{}' after round {} of {} (checkpoint of {})", config.name,
                 checkpoint->round, planned, checkpoint->created_at);
  }

  SHOAL_ASSIGN_OR_RETURN(ServerSide server_side, PrepareServerSide(config));
  // After the config is fully checked, so a bad key is named first.
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const TlsMaterial> tls,
                         LoadTransport(Side::kServer, flags.pki_dir, flags.insecure_plaintext));
  // Secure runs sign every model version; devices refuse unsigned ones.
  std::shared_ptr<const ModelSigner> signer;
  if (tls != nullptr) {
    SHOAL_ASSIGN_OR_RETURN(signer, Annotate(ModelSigner::Load(flags.pki_dir + "/model-signing.key"),
                                            "--pki-dir"));
    spdlog::info("signing every model version with key {}", signer->key_id());
  }
  const int64_t num_parameters = server_side.initial.NumElements();
  SHOAL_RETURN_IF_ERROR(MakeDirectories(config.output_dir));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ModelStore> store,
                         ModelStore::Open(config.output_dir + "/models",
                                          client::ModelSpecToString(server_side.model), signer));

  ClientManager clients;
  // Task IDs carry this process's nonce: a result for a task handed out
  // before a restart is refused, never matched to a new task.
  auto epoch = std::make_shared<ServerEpoch>();
  if (checkpoint) {
    // Known again, but not live (sampled) until each is heard from, with
    // the example counts each declared, so the bound on what its results
    // count for holds across the restart.
    for (const std::string& id : checkpoint->client_ids) {
      auto proxy = std::make_shared<GrpcClientProxy>(id, epoch);
      const auto declared = checkpoint->declared_examples.find(id);
      if (declared != checkpoint->declared_examples.end()) proxy->Declare(declared->second);
      clients.AddKnown(std::move(proxy));
    }
  }
  FederationServiceOptions service_options;
  service_options.run_id = config.name;
  service_options.epoch = epoch;
  service_options.access.require_certificate = tls != nullptr;
  if (tls != nullptr) service_options.access.revoked_file = flags.pki_dir + "/revoked.txt";
  FederationService service(service_options, &clients, store.get());
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> server,
                         GrpcServer::Start(config.address, &service, tls.get()));
  absl::StatusOr<std::unique_ptr<Coordinator>> created =
      checkpoint ? Coordinator::Resume(config.coordinator, &clients, server_side.strategy.get(),
                                       store.get(), *checkpoint)
                 : Coordinator::Create(config.coordinator, &clients, server_side.strategy.get(),
                                       store.get(), std::move(server_side.initial));
  if (!created.ok() && checkpoint) {
    return Annotate(created.status(),
                    absl::StrCat("cannot resume from the checkpoint in ", checkpoint_dir,
                                 " (pass --fresh to discard it and start over)"));
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Coordinator> coordinator, std::move(created));
  CheckpointWriter checkpointer(checkpoint_dir, run,
                                [&clients] { return clients.RegisteredClients(); });
  coordinator->SetCheckpointWriter(&checkpointer);
  spdlog::info("run '{}': {} rounds of {} on model '{}' ({} parameters), listening on port {} "
               "({})",
               config.name, config.coordinator.num_rounds, config.strategy,
               client::ModelSpecToString(server_side.model), num_parameters, server->port(),
               tls != nullptr ? "mutual TLS, clients admitted by certificate" : "PLAINTEXT");
  ProgressReporter progress(config, config.output_dir);
  coordinator->AddObserver(&progress);

  *exit_code = 1;
  absl::StatusOr<std::vector<RoundRecord>> history;
  int stop_signal = 0;
  {
    StopOnSignal stop(coordinator.get());
    history = coordinator->Run();
    stop_signal = stop.received();
  }
  // Give clients a moment to fetch the final model and leave: live clients
  // are long-polling and hear of the end at once. Stop waiting when all have
  // left, when those remaining have been silent for 3 s (dead devices), or
  // after 15 s.
  const absl::Time linger_start = absl::Now();
  while (clients.NumRegistered() > 0 && absl::Now() < linger_start + absl::Seconds(15)) {
    const absl::Time now = absl::Now();
    if (now - linger_start > absl::Seconds(3) &&
        clients.NumSeenSince(now - absl::Seconds(3)) == 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  server->Shutdown();
  SHOAL_RETURN_IF_ERROR(history.status());
  SHOAL_RETURN_IF_ERROR(progress.Write());

  std::optional<ModelRecord> latest = store->Latest();
  const RoundRecord* last = history->empty() ? nullptr : &history->back();
  // history[0] is the initial model's evaluation, not a training round.
  std::printf("\n=== Shoal run '%s' finished: %zu round(s) ===\n", config.name.c_str(),
              history->empty() ? size_t{0} : history->size() - 1);
  if (!coordinator->stop_reason().empty()) {
    std::printf("Stopped early: %s\n", coordinator->stop_reason().c_str());
  } else if (stop_signal != 0) {
    std::printf(
        "Stopped by signal %d after round %u; start the server again to "
        "resume\n",
        stop_signal, last != nullptr ? last->round : 0);
  }
  if (last != nullptr && last->server_eval) {
    std::printf("Final test accuracy: %.2f%% (test loss %.4f)\n",
                100 * Accuracy(*last->server_eval), last->server_eval->loss);
  }
  if (latest) {
    std::printf("Final model: version %lld in %s/%s (sha256 %s)\n",
                static_cast<long long>(latest->version), store->dir().c_str(),
                latest->params_file.c_str(), latest->sha256_hex.c_str());
  }
  std::printf("Metrics history: %s/metrics.json and metrics.csv\n", config.output_dir.c_str());
  const std::string verify =
      signer != nullptr ? absl::StrCat("--model-key ", flags.pki_dir, "/model-signing.pub")
                        : std::string("--insecure-unverified");
  // With the config, infer reads the test split as the evaluation did
  // (same format and normalization).
  const std::string data =
      flags.config.empty()
          ? absl::StrCat("--input ", config.data.dir, "/t10k-images-idx3-ubyte.gz --labels ",
                         config.data.dir, "/t10k-labels-idx1-ubyte.gz")
          : absl::StrCat("--config ", flags.config, " --input ", config.data.dir);
  std::printf("Run inference (works offline):\n  shoal infer %s --model-dir %s %s\n",
              verify.c_str(), store->dir().c_str(), data.c_str());
  std::fflush(stdout);
  *exit_code = 0;
  return absl::OkStatus();
}

}  // namespace

int RunServerCommand(const ServerFlags& flags) {
  int exit_code = 1;
  absl::Status status = RunServer(flags, &exit_code);
  if (!status.ok()) {
    std::fprintf(stderr, "shoal server: %s\n", std::string(status.message()).c_str());
    return exit_code == 0 ? 1 : exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
