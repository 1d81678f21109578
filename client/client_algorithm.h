// ClientAlgorithm: what a strategy's client half adds to plain local SGD, as
// hooks at the points of a client's round. The built-ins are FedProx's
// proximal term, q-FedAvg's initial loss, SCAFFOLD's control variates and
// client-side DP clipping (client/algorithms/); a user's strategy with a
// client half (a custom regularizer, a control variate) implements one
// outside Shoal and registers it by name (client/client_algorithm_registry.h).
//
// The server names the algorithms of a round, with their parameters, in
// FitConfig.client_algorithms; LocalClient creates a fresh ClientAlgorithm
// for each entry every round and calls its hooks, entry by entry in that
// order, at each point:
//
//   LocalClient::Fit
//     BeforeTraining(round, &state)       the round as the client received it
//     Trainer::Fit
//       BeforeFirstStep(start)            the model holds the global weights
//       for every batch:
//         loss = task loss(outputs, targets)
//         objective = loss + LossTerm(step) + ...     then backward()
//         AfterBackward(step)             may change the gradients
//         optimizer step
//     AfterTraining(round, outcome, &state, &res)     may change the result
//
// A hook that returns an error fails the client's round with that status.
// LibTorch errors thrown inside a hook are caught by the Trainer (Internal),
// as for the training step itself.
//
// State between rounds: each algorithm has a Parameters blob on each client,
// kept by LocalClient under the algorithm's name (ClientAlgorithmState),
// empty at first and kept only when the round succeeds. Replace its tensors
// rather than writing into them: copies of the state share storage.
#ifndef SHOAL_CLIENT_CLIENT_ALGORITHM_H_
#define SHOAL_CLIENT_CLIENT_ALGORITHM_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/data/dataset.h"
#include "client/data/example_source.h"
#include "client/model.h"
#include "common/parameters.h"
#include "common/types.h"

namespace shoal::client {

class Trainer;
struct FitOutcome;

// ClientAlgorithmState: a client's state for each of its algorithms, by
// algorithm name (SCAFFOLD's control variate c_i under "scaffold").
using ClientAlgorithmState = std::map<std::string, Parameters>;

// ClientRound: the round as this client received it; valid during one Fit.
struct ClientRound {
  uint32_t round;
  const Parameters& global;
  const v1::FitConfig& config;
  // FitIns.aux: the strategy's auxiliary tensors, null when it sent none.
  const Parameters* aux;
};

// TrainingStart: what BeforeFirstStep sees. The model holds the global
// weights, on the trainer's device; `trainable` are the tensors the
// optimizer steps, and share storage with `parameters`
// (model.GetParameters(), which gives them their names).
struct TrainingStart {
  uint32_t round;
  const v1::FitConfig& config;
  Model& model;
  const ExampleSource& data;  // the training data
  const Parameters& parameters;
  const std::vector<at::Tensor>& trainable;
  // The Trainer running the round, e.g. to evaluate the global model first.
  Trainer& trainer;
};

// TrainingStep: one optimizer step, after the forward pass.
struct TrainingStep {
  int64_t epoch;
  const at::Tensor& inputs;
  const at::Tensor& targets;
  const at::Tensor& outputs;
  const std::vector<at::Tensor>& trainable;
};

// ClientAlgorithm is one round's instance of a client half; every hook does
// nothing unless overridden. Not thread-safe; LocalClient owns it for the
// round.
class ClientAlgorithm {
 public:
  virtual ~ClientAlgorithm() = default;

  // BeforeTraining sees the round before the Trainer starts; `state` is this
  // algorithm's state on this client. E.g. SCAFFOLD reads the server's
  // control variate from round.aux.
  virtual absl::Status BeforeTraining(const ClientRound& /*round*/, Parameters* /*state*/) {
    return absl::OkStatus();
  }

  // BeforeFirstStep is called by the Trainer once the model holds the global
  // weights, before the optimizer is built. E.g. FedProx keeps the global
  // weights; q-FedAvg evaluates them.
  virtual absl::Status BeforeFirstStep(const TrainingStart& /*start*/) {
    return absl::OkStatus();
  }

  // LossTerm returns a term added to the step's loss before backward(),
  // differentiable in the trainable tensors, or an undefined tensor for none.
  // The reported train loss is the task loss alone.
  virtual at::Tensor LossTerm(const TrainingStep& /*step*/) { return {}; }

  // AfterBackward may change the gradients (trainable[k].grad()) before the
  // optimizer steps.
  virtual void AfterBackward(const TrainingStep& /*step*/) {}

  // AfterTraining may change what the client sends: res->update,
  // res->metrics, res->aux (laid out like round.aux). `res` is filled from
  // `outcome` (the Trainer's result) and already changed by the algorithms
  // listed before this one; read the update from `res`.
  virtual absl::Status AfterTraining(const ClientRound& /*round*/,
                                     const FitOutcome& /*outcome*/, Parameters* /*state*/,
                                     FitRes* /*res*/) {
    return absl::OkStatus();
  }
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_CLIENT_ALGORITHM_H_
