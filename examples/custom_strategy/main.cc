// custom_shoal: a federation server (and its clients) for two strategies of
// our own, built on Shoal's public API (include/shoal/) alone. Any config
// file can name them: "scaled_fedavg" (server side only, so standard
// `shoal client`s train for it) and "l2_fedavg" (with a client half: its
// clients are `custom_shoal client`, which registers it).
//
// Usage:
//   custom_shoal strategies
//   custom_shoal server --config FILE (--pki-dir DIR | --insecure-plaintext) [--fresh]
//   custom_shoal client --config FILE --partition I --state-dir DIR
//                       (--pki-dir DIR | --insecure-plaintext)
// Exit codes as `shoal`: 0 done, 1 the run failed, 2 bad input.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "l2_fedavg.h"
#include "scaled_fedavg.h"
#include "shoal/client.h"
#include "shoal/config.h"
#include "shoal/server.h"
#include "shoal/status.h"
#include "shoal/strategy.h"

namespace {

struct Flags {
  std::string command, config, pki_dir, state_dir;
  int partition = 0;
  bool insecure = false, fresh = false;
};

// Fail prints `s` for `command` and returns `code`: 2 for bad input
// (before the run starts), 1 for a failed run.
int Fail(const char* command, int code, const absl::Status& s) {
  std::fprintf(stderr, "custom_shoal %s: %s\n", command, std::string(s.message()).c_str());
  return code;
}

absl::StatusOr<std::shared_ptr<const shoal::TlsMaterial>> Transport(const Flags& flags,
                                                                    bool server) {
  if (flags.insecure) return std::shared_ptr<const shoal::TlsMaterial>();
  if (flags.pki_dir.empty()) {
    return absl::InvalidArgumentError("pass --pki-dir DIR (see `shoal certs`) or --insecure-plaintext");
  }
  SHOAL_ASSIGN_OR_RETURN(shoal::TlsMaterial tls, server ? shoal::LoadServerTls(flags.pki_dir)
                                                        : shoal::LoadClientTls(flags.pki_dir));
  return std::make_shared<const shoal::TlsMaterial>(std::move(tls));
}

int Server(const Flags& flags) {
  auto fail = [](int code, const absl::Status& s) { return Fail("server", code, s); };
  absl::StatusOr<shoal::ExperimentConfig> config = shoal::LoadExperimentConfig(flags.config);
  if (!config.ok()) return fail(2, config.status());
  absl::StatusOr<shoal::ServerSide> side = shoal::PrepareServerSide(*config);
  if (!side.ok()) return fail(2, side.status());
  absl::StatusOr<std::shared_ptr<const shoal::TlsMaterial>> tls = Transport(flags, true);
  if (!tls.ok()) return fail(2, tls.status());
  shoal::FederationServerOptions options;
  options.name = config->name;
  options.address = config->address;
  options.output_dir = config->output_dir;
  options.model_spec = shoal::ModelSpecToString(side->model);
  options.coordinator = config->coordinator;
  options.fresh = flags.fresh;
  options.tls = *tls;
  if (*tls != nullptr) {
    options.revoked_file = flags.pki_dir + "/revoked.txt";
    absl::StatusOr<std::shared_ptr<const shoal::ModelSigner>> signer =
        shoal::ModelSigner::Load(flags.pki_dir + "/model-signing.key");
    if (!signer.ok()) return fail(2, signer.status());
    options.signer = *signer;
  }
  absl::StatusOr<nlohmann::json> fingerprint = shoal::FingerprintedConfig(flags.config);
  if (!fingerprint.ok()) return fail(2, fingerprint.status());
  options.fingerprint_config = *std::move(fingerprint);
  // The metrics history (metrics.json, metrics.csv), as `shoal server` keeps it.
  shoal::ProgressReporter progress(*config, config->output_dir);
  options.observers.push_back(&progress);
  auto server = shoal::FederationServer::Create(std::move(options), side->strategy.get(),
                                                std::move(side->initial));
  if (!server.ok()) return fail(2, server.status());
  absl::StatusOr<shoal::FederationRun> run = (*server)->Run();
  if (!run.ok()) return fail(1, run.status());
  if (absl::Status s = progress.Write(); !s.ok()) return fail(1, s);
  std::printf("%zu round(s) of %s; final model in %s\n",
              run->history.empty() ? size_t{0} : run->history.size() - 1,
              config->strategy.c_str(), (*server)->model_dir().c_str());
  return 0;
}

int Client(const Flags& flags) {
  auto fail = [](int code, const absl::Status& s) { return Fail("client", code, s); };
  absl::StatusOr<shoal::ExperimentConfig> config = shoal::LoadExperimentConfig(flags.config);
  if (!config.ok()) return fail(2, config.status());
  absl::StatusOr<std::shared_ptr<const shoal::TlsMaterial>> tls = Transport(flags, false);
  if (!tls.ok()) return fail(2, tls.status());
  shoal::SetComputeThreads(1);
  absl::StatusOr<shoal::Dataset> all = shoal::LoadData(
      config->data, shoal::Split::kTrain, shoal::Task(config->task), config->num_classes);
  if (!all.ok()) return fail(2, all.status());
  absl::StatusOr<shoal::ModelSpec> spec = shoal::ResolveModel(*config, *all);
  if (!spec.ok()) return fail(2, spec.status());
  auto parts = shoal::Partition(all->targets, config->partition);
  if (!parts.ok()) return fail(2, parts.status());
  if (flags.partition < 0 || flags.partition >= static_cast<int>(parts->size())) {
    return fail(2, absl::InvalidArgumentError("--partition is out of range"));
  }
  const uint64_t seed = shoal::ClientSeed(config->seed, flags.partition);
  auto [train, holdout] =
      shoal::SplitClientData(all->Subset((*parts)[flags.partition]), config->holdout_fraction, seed);
  auto model = shoal::CreateModel(*spec, config->seed);
  if (!model.ok()) return fail(2, model.status());
  shoal::TrainerOptions trainer_options;
  trainer_options.seed = seed;
  trainer_options.task = config->task;
  auto trainer = shoal::Trainer::Create(trainer_options);
  if (!trainer.ok()) return fail(2, trainer.status());
  shoal::LocalClient local(*std::move(model), *std::move(trainer), std::move(train),
                           std::move(holdout));
  shoal::AgentOptions options;
  options.server_address = config->address;
  options.client_id = *tls != nullptr ? (*tls)->common_name
                                      : "client-" + std::to_string(flags.partition);
  options.tls = *tls;
  if (*tls != nullptr) {
    auto verifier = shoal::ModelVerifier::Load(flags.pki_dir + "/model-signing.pub");
    if (!verifier.ok()) return fail(2, verifier.status());
    options.model_verifier = *verifier;
  }
  options.state_dir = flags.state_dir;
  auto code = shoal::ReadModelCode(shoal::ModelSpecToString(*spec));
  if (!code.ok()) return fail(2, code.status());
  options.model_code = *std::move(code);
  options.seed = seed;
  shoal::Agent agent(options, &local);
  if (absl::Status s = agent.Run(); !s.ok()) return fail(1, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::Status s = RegisterScaledFedAvg();
  if (s.ok()) s = RegisterL2FedAvg();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  Flags flags;
  if (argc >= 2) flags.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--config") flags.config = value();
    else if (arg == "--pki-dir") flags.pki_dir = value();
    else if (arg == "--state-dir") flags.state_dir = value();
    else if (arg == "--partition") flags.partition = std::atoi(value().c_str());
    else if (arg == "--insecure-plaintext") flags.insecure = true;
    else if (arg == "--fresh") flags.fresh = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (flags.command == "strategies") {
    for (const std::string& name : shoal::RegisteredStrategies()) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (flags.command == "server" && !flags.config.empty()) return Server(flags);
  if (flags.command == "client" && !flags.config.empty() && !flags.state_dir.empty()) {
    return Client(flags);
  }
  std::fprintf(stderr,
               "usage: %s strategies | server --config FILE (--pki-dir DIR | "
               "--insecure-plaintext) [--fresh] | client --config FILE --partition I "
               "--state-dir DIR (--pki-dir DIR | --insecure-plaintext)\n",
               argv[0]);
  return 2;
}
