#include "strategies/fedavg.h"

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/random.h"

namespace shoal {

std::vector<FitInstruction> FedAvg::ConfigureFit(
    uint32_t round, const Parameters& global,
    const std::vector<std::string>& sampled_clients) {
  std::vector<FitInstruction> out;
  out.reserve(sampled_clients.size());
  for (const std::string& id : sampled_clients) {
    out.push_back({id, options_.fit_config});
  }
  return out;
}

std::vector<EvaluateInstruction> FedAvg::ConfigureEvaluate(
    uint32_t round, const Parameters& global,
    const std::vector<std::string>& live_clients) {
  const size_t want = static_cast<size_t>(
      std::ceil(options_.fraction_evaluate * static_cast<double>(live_clients.size())));
  std::vector<std::string> chosen = live_clients;
  // Seeded by the round: a partial Fisher-Yates over the sorted IDs.
  std::mt19937_64 rng(SplitMix64(round));
  for (size_t i = 0; i < want && i < chosen.size(); ++i) {
    std::swap(chosen[i], chosen[i + rng() % (chosen.size() - i)]);
  }
  chosen.resize(std::min(want, chosen.size()));
  std::vector<EvaluateInstruction> out;
  for (const std::string& id : chosen) {
    EvaluateInstruction ins;
    ins.client_id = id;
    ins.config.set_batch_size(options_.evaluate_batch_size);
    out.push_back(std::move(ins));
  }
  return out;
}

std::unique_ptr<FitAggregator> FedAvg::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<WeightedSumAggregator>(std::move(global));
}

WeightedSumAggregator::WeightedSumAggregator(std::shared_ptr<const Parameters> global)
    : global_(std::move(global)) {
  sums_.resize(global_->size());
}

absl::Status WeightedSumAggregator::Accept(const std::string& client_id,
                                           const FitRes& res) {
  if (res.num_examples <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client '", client_id, "' reported num_examples = ", res.num_examples,
        "; it must be positive"));
  }
  const double weight = static_cast<double>(res.num_examples);
  for (size_t i = 0; i < global_->size(); ++i) {
    const at::Tensor& g = global_->tensor(i);
    if (!at::isFloatingType(g.scalar_type())) continue;
    if (!sums_[i].defined()) {
      // float64 accumulation: exact for the weights, and the fold order of
      // results (which depends on network timing) does not change the
      // outcome beyond float64 rounding.
      sums_[i] = at::zeros(g.sizes(), g.options().dtype(at::kDouble));
    }
    sums_[i].add_(res.update.tensor(i), weight);
  }
  total_examples_ += res.num_examples;
  ++accepted_;
  return absl::OkStatus();
}

absl::StatusOr<Parameters> WeightedSumAggregator::Finish(
    const std::vector<ClientFailure>& failures) {
  if (accepted_ == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no results to aggregate (", failures.size(), " failures)"));
  }
  Parameters next;
  for (size_t i = 0; i < global_->size(); ++i) {
    const at::Tensor& g = global_->tensor(i);
    if (!sums_[i].defined()) {
      next.Add(global_->name(i), g.clone());
      continue;
    }
    at::Tensor mean = sums_[i] / static_cast<double>(total_examples_);
    next.Add(global_->name(i), (g.to(at::kDouble) + mean).to(g.scalar_type()));
  }
  return next;
}

}  // namespace shoal
