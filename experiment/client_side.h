// ClientSide: the client half of a run, built from the experiment config
// (the mirror of PrepareServerSide): the device's examples (its own folder,
// or its partition of the config's data), split into training and held-out
// examples, the model the config names, shaped by the data, and the Trainer,
// put together as a LocalClient. `shoal client` and shoal::Device use it.
#ifndef SHOAL_EXPERIMENT_CLIENT_SIDE_H_
#define SHOAL_EXPERIMENT_CLIENT_SIDE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/data/source.h"
#include "client/local_client.h"
#include "common/signing.h"
#include "experiment/experiment_config.h"

namespace shoal {

struct ClientSideOptions {
  // The device's own data: a folder in the config's data format. Empty:
  // partition `partition` of the config's data (demos and tests).
  std::string data_dir;
  int partition = -1;
  std::string device = "cpu";  // LibTorch device of the model
  // The device's caps on a round of training (TrainerOptions).
  absl::Duration time_budget = absl::InfiniteDuration();
  int64_t memory_budget_bytes = 0;
};

struct ClientSide {
  std::unique_ptr<client::LocalClient> local;
  // The held-out examples (also in `local`): what a serving guard judges on.
  std::shared_ptr<const client::ExampleSource> holdout;
  // The model's code, read once: the bytes the agent compares with the
  // server's are the bytes that run.
  ModelCode model_code;
  uint64_t data_seed = 0;  // the client's data seed (shuffles, holdout split)
  std::string description;  // "N training and M held-out examples (...)", for the log
};

// PrepareClientSide builds the client half. Errors: InvalidArgument for a
// partition out of range or data the model cannot take (naming the key or
// file); FailedPrecondition when the client has no training examples;
// those of reading the data.
absl::StatusOr<ClientSide> PrepareClientSide(const ExperimentConfig& config,
                                             const ClientSideOptions& options);

}  // namespace shoal

#endif  // SHOAL_EXPERIMENT_CLIENT_SIDE_H_
