#include "experiment/client_side.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/data/spool.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/logging.h"
#include "common/status.h"

namespace shoal {
namespace {

// LoadClientData loads the client's examples: its own data (data_dir, in
// the config's format) or its partition of the config's data; in memory, or
// spooled to disk and read a batch at a time (data.stream). Also returns
// the model spec shaped by the data as loaded (before partitioning, so every
// client of a run agrees with the server).
absl::StatusOr<std::pair<std::shared_ptr<const client::ExampleSource>, client::ModelSpec>>
LoadClientData(const ClientSideOptions& options, const ExperimentConfig& config) {
  client::DataOptions data = config.data;
  if (!options.data_dir.empty()) data.dir = options.data_dir;
  if (data.stream) {
    spdlog::info("reading the training data into a spool file in {} (data.stream)",
                 data.spool_dir.empty() ? client::DefaultSpoolDir() : data.spool_dir);
  }
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const client::ExampleSource> all,
                         client::OpenData(data, client::Split::kTrain,
                                          client::Task(config.task), config.num_classes));
  SHOAL_ASSIGN_OR_RETURN(client::ModelSpec spec, ResolveModel(config, *all));
  if (!options.data_dir.empty()) return std::make_pair(std::move(all), std::move(spec));
  if (options.partition < 0 || options.partition >= config.partition.num_partitions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "partition ", options.partition, " is out of range: data.num_partitions is ",
        config.partition.num_partitions));
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> parts,
                         client::Partition(all->targets(), config.partition));
  return std::make_pair(all->Subset(parts[options.partition]), std::move(spec));
}

}  // namespace

absl::StatusOr<ClientSide> PrepareClientSide(const ExperimentConfig& config,
                                             const ClientSideOptions& options) {
  ClientSide side;
  // A client's own data (no partition) counts as client -1.
  const int partition = options.data_dir.empty() ? options.partition : -1;
  side.data_seed = client::ClientSeed(config.seed, static_cast<uint64_t>(partition));
  SHOAL_ASSIGN_OR_RETURN(auto loaded, LoadClientData(options, config));
  auto [train, holdout] =
      client::SplitClientData(*loaded.first, config.holdout_fraction, side.data_seed);
  if (train->size() == 0) {
    return absl::FailedPreconditionError("this client has no training examples");
  }
  side.description = absl::StrCat(
      train->size(), " training and ", holdout->size(), " held-out examples",
      options.data_dir.empty()
          ? absl::StrCat(" (partition ", options.partition, " of ",
                         config.partition.num_partitions, ", ",
                         client::PartitionSchemeName(config.partition.scheme), ")")
          : absl::StrCat(" from ", options.data_dir));
  SHOAL_ASSIGN_OR_RETURN(side.model_code,
                         ReadModelCode(client::ModelSpecToString(loaded.second)));
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                         client::CreateModelFromCode(side.model_code, config.seed));
  client::TrainerOptions trainer_options;
  trainer_options.device = options.device;
  trainer_options.seed = side.data_seed;
  trainer_options.task = config.task;
  trainer_options.time_budget = options.time_budget;
  trainer_options.memory_budget_bytes = options.memory_budget_bytes;
  SHOAL_ASSIGN_OR_RETURN(client::Trainer trainer, client::Trainer::Create(trainer_options));
  model->To(c10::Device(options.device));
  side.holdout = holdout;
  side.local = std::make_unique<client::LocalClient>(std::move(model), std::move(trainer),
                                                     std::move(train), std::move(holdout));
  side.local->set_personal(config.coordinator.personal);
  return side;
}

}  // namespace shoal
