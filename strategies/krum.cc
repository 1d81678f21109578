#include "strategies/krum.h"

#include <ATen/ATen.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {
namespace {

// Large enough for any cohort; the real bound is min_fit_clients.
constexpr int64_t kMaxCount = int64_t{1} << 30;

// Builds either registered name; `multi` says whether num_selected is read.
absl::StatusOr<std::unique_ptr<Strategy>> MakeKrumFamily(
    const std::string& name, bool multi, const nlohmann::json& params,
    const StrategyContext& context) {
  FedAvgOptions options;
  MultiKrumOptions krum;
  StrategyParams p(name, params);
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options));
  SHOAL_RETURN_IF_ERROR(
      p.Integer("num_malicious", 0, kMaxCount, &krum.num_malicious));
  if (multi) {
    SHOAL_RETURN_IF_ERROR(
        p.Integer("num_selected", 1, kMaxCount, &krum.num_selected));
  } else if (params.is_object() && params.contains("num_selected")) {
    return absl::InvalidArgumentError(
        "'strategy.num_selected' is not a parameter of strategy 'krum', which "
        "always "
        "applies the one lowest-scored update; use strategy 'multikrum' to "
        "average several");
  }
  SHOAL_RETURN_IF_ERROR(p.Finish());
  // Checked here, not only per round: a cohort too small for f would
  // otherwise fail every round of the run.
  const int64_t f = krum.num_malicious;
  const int64_t min_fit = context.min_fit_clients;
  if (2 * f + 3 > min_fit) {
    return absl::InvalidArgumentError(
        absl::StrCat("strategy '", name, "' with num_malicious = ", f,
                     " needs at least 2 * ", f, " + 3 = ", 2 * f + 3,
                     " results per round, but min_fit_clients = ", min_fit,
                     "; raise min_fit_clients or lower num_malicious"));
  }
  if (krum.num_selected > min_fit - f) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy '", name, "': num_selected = ", krum.num_selected,
        " must be at most min_fit_clients - num_malicious = ", min_fit, " - ",
        f, " = ", min_fit - f));
  }
  if (multi) return std::make_unique<MultiKrum>(std::move(options), krum);
  return std::make_unique<Krum>(std::move(options), f);
}

}  // namespace

at::Tensor PairwiseSquaredDistances(const at::Tensor& updates) {
  // compute_mode 2 computes each distance directly. The faster matmul form
  // |a|^2 + |b|^2 - 2 a.b cancels catastrophically in float32 when updates
  // are close relative to their norms, which is exactly the honest cluster
  // whose ranking Krum depends on.
  return at::cdist(updates, updates, /*p=*/2, /*compute_mode=*/2)
      .to(at::kDouble)
      .square();
}

at::Tensor KrumScores(const at::Tensor& sq_dists, int64_t num_neighbors) {
  // A vector is not its own neighbour: +inf on the diagonal sorts it last.
  at::Tensor others =
      sq_dists.clone().fill_diagonal_(std::numeric_limits<double>::infinity());
  return std::get<0>(others.sort(/*dim=*/1)).narrow(1, 0, num_neighbors).sum(1);
}

std::unique_ptr<FitAggregator> MultiKrum::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  const MultiKrumOptions krum = krum_;
  const std::string name(this->name());
  return std::make_unique<PerClientAggregator>(
      std::move(global),
      [krum, name](const at::Tensor& updates,
                   const std::vector<int64_t>& num_examples)
          -> absl::StatusOr<at::Tensor> {
        const int64_t n = updates.size(0);
        const int64_t f = krum.num_malicious;
        const int64_t m = krum.num_selected;
        if (n < 2 * f + 3) {
          return absl::FailedPreconditionError(absl::StrCat(
              name, " with num_malicious = ", f, " needs at least 2 * ", f,
              " + 3 = ", 2 * f + 3, " results, but only ", n, " arrived"));
        }
        if (m > n - f) {
          return absl::FailedPreconditionError(absl::StrCat(
              name, ": num_selected = ", m, " exceeds the ", n, " - ", f, " = ",
              n - f, " results that may be honest this round"));
        }
        at::Tensor scores =
            KrumScores(PairwiseSquaredDistances(updates), n - f - 2);
        // Stable: equal scores keep the row order, which is client-ID
        // order (PerClientAggregator sorts the rows).
        at::Tensor order = std::get<1>(
            at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/false));
        return updates.index_select(0, order.narrow(0, 0, m)).mean(0);
      });
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeKrum(
    const nlohmann::json& params, const StrategyContext& context) {
  return MakeKrumFamily("krum", /*multi=*/false, params, context);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeMultiKrum(
    const nlohmann::json& params, const StrategyContext& context) {
  return MakeKrumFamily("multikrum", /*multi=*/true, params, context);
}

}  // namespace shoal
