// FedProx's client half: the proximal term. Its server half is
// strategies/fedprox.cc.
#include <ATen/ATen.h>

#include <vector>

#include "client/algorithms/builtin.h"
#include "common/client_algorithms.h"
#include "common/status.h"

namespace shoal::client {
namespace {

class FedProxClient : public ClientAlgorithm {
 public:
  explicit FedProxClient(double mu) : mu_(mu) {}

  absl::Status BeforeFirstStep(const TrainingStart& start) override {
    if (mu_ > 0) {
      for (const at::Tensor& p : start.trainable) anchors_.push_back(p.detach().clone());
    }
    return absl::OkStatus();
  }

  // mu/2 * ||w - w_global||^2; none at mu = 0, so that FedProx at 0 is
  // plain SGD exactly.
  at::Tensor LossTerm(const TrainingStep& step) override {
    at::Tensor term;
    for (size_t k = 0; k < anchors_.size(); ++k) {
      at::Tensor t = (mu_ / 2) * (step.trainable[k] - anchors_[k]).pow(2).sum();
      term = term.defined() ? term + t : t;
    }
    return term;
  }

 private:
  const double mu_;
  std::vector<at::Tensor> anchors_;  // the global weights, one per trainable tensor
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeFedProxClient(ClientAlgorithmParams& params) {
  double mu = 0;
  SHOAL_RETURN_IF_ERROR(params.Number(kProximalMuParam, 0, 1e6, &mu));
  return std::make_unique<FedProxClient>(mu);
}

}  // namespace shoal::client
