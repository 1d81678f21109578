// q-FedAvg's client half: the loss of the global model on the client's own
// data, which the server (strategies/qfedavg.cc) weighs the client by.
#include <algorithm>
#include <cmath>

#include "client/algorithms/builtin.h"
#include "client/trainer.h"
#include "common/client_algorithms.h"
#include "common/status.h"

namespace shoal::client {
namespace {

class QFedAvgClient : public ClientAlgorithm {
 public:
  absl::Status BeforeFirstStep(const TrainingStart& start) override {
    SHOAL_ASSIGN_OR_RETURN(
        EvalOutcome before,
        start.trainer.Evaluate(start.model, start.data,
                               std::max<int64_t>(start.config.batch_size(), 128)));
    initial_loss_ = before.loss;
    return absl::OkStatus();
  }

  absl::Status AfterTraining(const ClientRound& /*round*/, const FitOutcome& /*outcome*/,
                             Parameters* /*state*/, FitRes* res) override {
    res->metrics[kInitialLossMetric] = initial_loss_;
    return absl::OkStatus();
  }

 private:
  double initial_loss_ = NAN;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeQFedAvgClient(
    ClientAlgorithmParams& /*params*/) {
  return std::make_unique<QFedAvgClient>();
}

}  // namespace shoal::client
