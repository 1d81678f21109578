// LocalClient: what a client does in a round, with no transport. It owns a
// model and its local data; the gRPC agent and the simulator both drive it.
#ifndef SHOAL_CLIENT_LOCAL_CLIENT_H_
#define SHOAL_CLIENT_LOCAL_CLIENT_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/types.h"

namespace shoal::client {

// Not thread-safe: one LocalClient per thread at a time.
class LocalClient {
 public:
  // `train` is the local training data, `holdout` the local held-out data
  // used by Evaluate (may be empty: Evaluate then fails).
  LocalClient(std::unique_ptr<Model> model, Trainer trainer, Dataset train,
              Dataset holdout)
      : model_(std::move(model)), trainer_(std::move(trainer)),
        train_(std::move(train)), holdout_(std::move(holdout)) {}

  // Fit fine-tunes the global parameters on the local data and returns the
  // update with num_examples and metrics "train_loss", the task's metrics
  // prefixed "train_" ("train_accuracy", "train_mae", ...), "steps" and
  // "fit_seconds"; "initial_loss" too when the config asks for it
  // (kReportInitialLossKey, q-FedAvg). `aux` is the strategy's auxiliary
  // tensors (FitIns::aux), if any.
  //
  // Differential privacy with client-side clipping (config kDpClipNormKey):
  // the update is scaled down to that L2 norm when longer, and metric
  // "dp_below_clip" says whether it was within it.
  //
  // SCAFFOLD (config kScaffoldKey; Karimireddy et al. 2020, option II):
  // `aux` is the server control variate c. Every gradient is corrected by
  // c - c_i, where c_i is this client's control variate (zero at first, kept
  // in memory across rounds: a restarted client starts again from zero).
  // After K steps at learning rate lr, c_i+ = c_i - c + (x - y) / (K lr), and
  // FitRes.aux carries c_i+ - c_i.
  absl::StatusOr<FitRes> Fit(const Parameters& global, const v1::FitConfig& config,
                             uint32_t round, const Parameters* aux = nullptr);

  // Evaluate loads `global` and evaluates it on the held-out data: its loss
  // and the task's metrics ("accuracy", or "mae", "rmse", "r2").
  absl::StatusOr<EvaluateRes> Evaluate(const Parameters& global,
                                       const v1::EvaluateConfig& config);

  // Assign makes this LocalClient act as another client: its shuffle seed
  // (in `trainer`), its data and its SCAFFOLD control variate (empty for
  // none). A simulation worker keeps one model and runs many virtual clients
  // through it this way; between them the client's state lives elsewhere.
  void Assign(Trainer trainer, Dataset train, Dataset holdout, Parameters control) {
    trainer_ = std::move(trainer);
    train_ = std::move(train);
    holdout_ = std::move(holdout);
    control_ = std::move(control);
  }
  // control returns SCAFFOLD's c_i (empty before the first SCAFFOLD round).
  const Parameters& control() const { return control_; }

  Model& model() { return *model_; }
  // ReplaceModel makes this client train and evaluate `model` from now on;
  // the agent does when the server's (signed) model code is not the code
  // this client was built with.
  void ReplaceModel(std::unique_ptr<Model> model) { model_ = std::move(model); }
  const Dataset& train_data() const { return train_; }
  const Dataset& holdout_data() const { return holdout_; }

 private:
  std::unique_ptr<Model> model_;
  Trainer trainer_;
  Dataset train_;
  Dataset holdout_;
  Parameters control_;  // SCAFFOLD's c_i; empty until the first SCAFFOLD round
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_LOCAL_CLIENT_H_
