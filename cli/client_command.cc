#include <torch/torch.h>

#include <cstdio>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/experiment_config.h"
#include "cli/transport.h"
#include "client/agent.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/local_client.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/logging.h"
#include "common/signing.h"
#include "common/status.h"

namespace shoal::cli {
namespace {

// SplitHoldout keeps `fraction` of the client's examples aside for local
// evaluation, chosen by a seeded permutation.
std::pair<client::Dataset, client::Dataset> SplitHoldout(const client::Dataset& data,
                                                         double fraction, uint64_t seed) {
  const int64_t n = data.size();
  const int64_t held = static_cast<int64_t>(fraction * static_cast<double>(n));
  at::Tensor perm = at::randperm(n, at::make_generator<at::CPUGeneratorImpl>(seed),
                                 at::TensorOptions().dtype(at::kLong));
  auto take = [&](int64_t begin, int64_t end) {
    at::Tensor idx = perm.slice(0, begin, end).contiguous();
    std::vector<int64_t> v(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
    return data.Subset(v);
  };
  return {take(held, n), take(0, held)};
}

absl::StatusOr<client::Dataset> LoadClientData(const ClientFlags& flags,
                                               const ExperimentConfig& config) {
  if (!flags.data_dir.empty()) {
    return client::LoadFashionMnist(flags.data_dir, client::Split::kTrain);
  }
  if (flags.partition >= config.partition.num_partitions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--partition ", flags.partition, " is out of range: data.num_partitions is ",
        config.partition.num_partitions));
  }
  SHOAL_ASSIGN_OR_RETURN(client::Dataset all,
                         client::LoadFashionMnist(config.data_dir, client::Split::kTrain));
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> parts,
                         client::Partition(all.targets, config.partition));
  return all.Subset(parts[flags.partition]);
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

  const uint64_t data_seed = config.seed ^ (0x5eedULL + static_cast<uint64_t>(flags.partition + 1));
  SHOAL_ASSIGN_OR_RETURN(client::Dataset data, LoadClientData(flags, config));
  auto [train, holdout] = SplitHoldout(data, config.holdout_fraction, data_seed);
  if (train.size() == 0) {
    return absl::FailedPreconditionError("this client has no training examples");
  }
  spdlog::info("{} training and {} held-out examples{}", train.size(), holdout.size(),
               flags.data_dir.empty()
                   ? absl::StrCat(" (partition ", flags.partition, " of ",
                                  config.partition.num_partitions, ", ",
                                  client::PartitionSchemeName(config.partition.scheme), ")")
                   : absl::StrCat(" from ", flags.data_dir));

  // Read once: the bytes the agent compares with the server's code are the
  // bytes that run.
  SHOAL_ASSIGN_OR_RETURN(ModelCode model_code, ReadModelCode(config.model));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                         client::CreateModelFromCode(model_code, config.seed));
  client::TrainerOptions trainer_options;
  trainer_options.device = flags.device;
  trainer_options.seed = data_seed;
  SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer, client::Trainer::Create(trainer_options));
  model->To(c10::Device(flags.device));
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
