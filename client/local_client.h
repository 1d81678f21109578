// LocalClient: what a client does in a round, with no transport. It owns a
// model and its local data; the gRPC agent and the simulator both drive it.
#ifndef SHOAL_CLIENT_LOCAL_CLIENT_H_
#define SHOAL_CLIENT_LOCAL_CLIENT_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "client/client_algorithm.h"
#include "client/data/dataset.h"
#include "client/data/example_source.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/types.h"

namespace shoal::client {

// The client state under which LocalClient keeps what top-k compression
// dropped (its error feedback), beside its algorithms' states.
inline constexpr char kCompressionResidualState[] = "update_compression";
// ... and its personal tensors (set_personal).
inline constexpr char kPersonalState[] = "personal";

// ReadClientState reads the state a device keeps between rounds (its
// algorithms', top-k's residual, its personal tensors) from
// DIR/client_state.pb; NotFound when nothing was kept, DataLoss for a file
// that does not parse (naming it). WriteClientState replaces it atomically.
absl::StatusOr<ClientAlgorithmState> ReadClientState(const std::string& dir);
absl::Status WriteClientState(const std::string& dir, const ClientAlgorithmState& state);

// WithPersonal returns `global` with the tensors of `personal` in place of
// the global ones. InvalidArgument naming a personal tensor the model does
// not have, has with another shape or dtype, or that is not finite: a
// device's own tensors are not signed, so they are checked before use.
absl::StatusOr<Parameters> WithPersonal(const Parameters& global, const Parameters& personal);

// Not thread-safe: one LocalClient per thread at a time.
class LocalClient {
 public:
  // `train` is the local training data, `holdout` the local held-out data
  // used by Evaluate (may be empty: Evaluate then fails). In memory, or
  // read a batch at a time (OpenData with data.stream).
  LocalClient(std::unique_ptr<Model> model, Trainer trainer,
              std::shared_ptr<const ExampleSource> train,
              std::shared_ptr<const ExampleSource> holdout)
      : model_(std::move(model)), trainer_(std::move(trainer)),
        train_(std::move(train)), holdout_(std::move(holdout)) {}
  LocalClient(std::unique_ptr<Model> model, Trainer trainer, Dataset train, Dataset holdout)
      : LocalClient(std::move(model), std::move(trainer), InMemory(std::move(train)),
                    InMemory(std::move(holdout))) {}

  // Fit fine-tunes the global parameters on the local data and returns the
  // update with num_examples and metrics "train_loss", the task's metrics
  // prefixed "train_" ("train_accuracy", "train_mae", ...), "steps" and
  // "fit_seconds". `aux` is the strategy's auxiliary tensors (FitIns::aux),
  // if any.
  //
  // The client algorithms the config names (config.client_algorithms, e.g.
  // SCAFFOLD, FedProx, client-side DP clipping; client/client_algorithm.h)
  // are created from the registry for this round and run in order at every
  // point of it; they may change the update and add metrics and aux. Their
  // state is kept between rounds (algorithm_state()) when the round succeeds.
  //
  // When the config asks for compression (config.compression), the update
  // is compressed last: res.compressed is what to upload, res.update what
  // the server decodes from it, and top-k's residual is kept in
  // algorithm_state() under kCompressionResidualState.
  // InvalidArgument for an algorithm this client does not have, bad params or
  // one named twice; otherwise the Trainer's or a hook's error.
  absl::StatusOr<FitRes> Fit(const Parameters& global, const v1::FitConfig& config,
                             uint32_t round, const Parameters* aux = nullptr);

  // Evaluate loads `global` and evaluates it on the held-out data: its loss
  // and the task's metrics ("accuracy", or "mae", "rmse", "r2").
  absl::StatusOr<EvaluateRes> Evaluate(const Parameters& global,
                                       const v1::EvaluateConfig& config);

  // Assign makes this LocalClient act as another client: its shuffle seed
  // (in `trainer`), its data and the state of its client algorithms (e.g.
  // SCAFFOLD's control variate; empty for none). A simulation worker keeps
  // one model and runs many virtual clients through it this way; between
  // them the client's state lives elsewhere.
  void Assign(Trainer trainer, std::shared_ptr<const ExampleSource> train,
              std::shared_ptr<const ExampleSource> holdout, ClientAlgorithmState state) {
    trainer_ = std::move(trainer);
    train_ = std::move(train);
    holdout_ = std::move(holdout);
    algorithm_state_ = std::move(state);
  }
  void Assign(Trainer trainer, Dataset train, Dataset holdout, ClientAlgorithmState state) {
    Assign(std::move(trainer), InMemory(std::move(train)), InMemory(std::move(holdout)),
           std::move(state));
  }
  // algorithm_state returns the state of this client's algorithms by name
  // (SCAFFOLD's c_i under "scaffold"); empty before any keeps one.
  const ClientAlgorithmState& algorithm_state() const { return algorithm_state_; }
  // set_personal names this client's personal tensors (glob patterns over
  // the model's tensor names; fit.personal): they start each round from
  // this client's own values (the global model's the first time), are
  // trained, kept in algorithm_state() under kPersonalState, used by
  // Evaluate (and by PersonalModel), and never put in an update.
  void set_personal(std::vector<std::string> patterns) { personal_ = std::move(patterns); }
  // PersonalModel is `global` with this client's personal tensors in place
  // of the global ones (`global` itself when it keeps none, or keeps ones
  // that do not fit it).
  Parameters PersonalModel(const Parameters& global) const;

  // set_algorithm_state restores it (the agent, from its state dir).
  void set_algorithm_state(ClientAlgorithmState state) { algorithm_state_ = std::move(state); }

  Model& model() { return *model_; }
  // ReplaceModel makes this client train and evaluate `model` from now on;
  // the agent does when the server's (signed) model code is not the code
  // this client was built with.
  void ReplaceModel(std::unique_ptr<Model> model) { model_ = std::move(model); }
  const ExampleSource& train_data() const { return *train_; }
  const ExampleSource& holdout_data() const { return *holdout_; }
  const std::shared_ptr<const ExampleSource>& train_source() const { return train_; }

 private:
  std::unique_ptr<Model> model_;
  Trainer trainer_;
  std::shared_ptr<const ExampleSource> train_;
  std::shared_ptr<const ExampleSource> holdout_;
  ClientAlgorithmState algorithm_state_;
  std::vector<std::string> personal_;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_LOCAL_CLIENT_H_
