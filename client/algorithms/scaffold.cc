// SCAFFOLD's client half (Karimireddy et al. 2020, option II); the server
// half is strategies/scaffold.cc. FitIns.aux is the server control variate
// c. Every gradient is corrected by c - c_i, where c_i is this client's
// control variate (its state: zero at first, kept across rounds; a
// restarted client starts again from zero). After K steps at learning rate
// lr, c_i+ = c_i - c + (x - y) / (K lr), and FitRes.aux carries c_i+ - c_i.
#include <ATen/ATen.h>

#include <vector>

#include "client/algorithms/builtin.h"
#include "client/trainer.h"
#include "common/client_algorithms.h"
#include "common/status.h"

namespace shoal::client {
namespace {

// Combine returns sa * a + sb * b over the floating-point tensors of `a` and
// `b` (laid out alike, as a's dtypes); integer tensors become zeros, since no
// control variate applies to them.
Parameters Combine(double sa, const Parameters& a, double sb, const Parameters& b) {
  Parameters out;
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor& t = a.tensor(i);
    out.Add(a.name(i), at::isFloatingType(t.scalar_type())
                           ? (sa * t + sb * b.tensor(i).to(t.scalar_type())).contiguous()
                           : at::zeros_like(t));
  }
  return out;
}

// MatchCorrections pairs each trainable tensor with its gradient correction
// (a tensor of `correction`, which is laid out like `params`), matching them
// by storage: a model's parameters and its trainable tensors share it.
absl::StatusOr<std::vector<at::Tensor>> MatchCorrections(
    const Parameters& params, const std::vector<at::Tensor>& trainable,
    const Parameters& correction) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : trainable) {
    size_t i = 0;
    while (i < params.size() && params.tensor(i).data_ptr() != p.data_ptr()) ++i;
    if (i == params.size()) {
      return absl::InternalError(
          "a trainable tensor is not among the model's parameters; cannot apply "
          "the gradient correction");
    }
    out.push_back(correction.tensor(i).to(p.options()));
  }
  return out;
}

class ScaffoldClient : public ClientAlgorithm {
 public:
  absl::Status BeforeTraining(const ClientRound& round, Parameters* control) override {
    if (round.aux == nullptr) {
      return absl::InvalidArgumentError(
          "SCAFFOLD round without the server control variate (no auxiliary tensors)");
    }
    SHOAL_RETURN_IF_ERROR(
        Annotate(round.global.CheckCompatible(*round.aux), "server control variate"));
    if (control->empty() || !round.global.CheckCompatible(*control).ok()) {
      *control = Combine(0, round.global, 0, round.global);  // zero: first round, or a new model
    }
    correction_ = Combine(1, *round.aux, -1, *control);  // c - c_i
    return absl::OkStatus();
  }

  absl::Status BeforeFirstStep(const TrainingStart& start) override {
    SHOAL_ASSIGN_OR_RETURN(corrections_,
                           MatchCorrections(start.parameters, start.trainable, correction_));
    return absl::OkStatus();
  }

  void AfterBackward(const TrainingStep& step) override {
    for (size_t k = 0; k < corrections_.size(); ++k) {
      const at::Tensor& grad = step.trainable[k].grad();
      if (grad.defined()) grad.add_(corrections_[k]);  // g + c - c_i
    }
  }

  absl::Status AfterTraining(const ClientRound& round, const FitOutcome& outcome,
                             Parameters* control, FitRes* res) override {
    // c_i+ - c_i = -c - (y - x) / (K lr): the update is y - x.
    const double scale =
        1.0 / (static_cast<double>(outcome.steps) * round.config.learning_rate());
    Parameters delta = Combine(-scale, res->update, -1, *round.aux);
    *control = Combine(1, *control, 1, delta);
    res->aux = std::move(delta);
    return absl::OkStatus();
  }

 private:
  Parameters correction_;                // c - c_i, laid out like the model
  std::vector<at::Tensor> corrections_;  // its tensors, one per trainable tensor
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeScaffoldClient(
    ClientAlgorithmParams& /*params*/) {
  return std::make_unique<ScaffoldClient>();
}

}  // namespace shoal::client
