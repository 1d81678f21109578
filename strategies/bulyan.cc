#include "strategies/bulyan.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "strategies/aggregate.h"
#include "strategies/fedmedian.h"
#include "strategies/krum.h"
#include "strategies/params.h"

namespace shoal {
namespace {

// Large enough for any cohort; the real bound is min_fit_clients.
constexpr int64_t kMaxCount = int64_t{1} << 30;

// Combine is Bulyan on `updates` ([n, D], n >= 4f + 3) -> [D].
at::Tensor Combine(const at::Tensor& updates, int64_t f) {
  const int64_t n = updates.size(0);
  const int64_t theta = n - 2 * f;
  const int64_t beta = theta - 2 * f;

  // Selection: Krum on the remaining candidates, theta times. Distances do
  // not change as candidates leave, so they are computed once and each
  // round restricts the matrix to the candidates left.
  const at::Tensor sq_dists = PairwiseSquaredDistances(updates);
  std::vector<int64_t> remaining(n);
  for (int64_t i = 0; i < n; ++i) remaining[i] = i;
  std::vector<int64_t> selected;
  selected.reserve(theta);
  while (static_cast<int64_t>(selected.size()) < theta) {
    const int64_t r = static_cast<int64_t>(remaining.size());
    int64_t best = 0;
    if (r > 1) {
      const at::Tensor idx = at::tensor(remaining, at::kLong);
      const at::Tensor sub = sq_dists.index_select(0, idx).index_select(1, idx);
      const int64_t neighbors = std::clamp<int64_t>(r - f - 2, 1, r - 1);
      // argmin returns the first of equal minima: rows are in client-ID
      // order, so the lower client ID.
      best = KrumScores(sub, neighbors).argmin().item<int64_t>();
    }
    selected.push_back(remaining[best]);
    remaining.erase(remaining.begin() + best);
  }
  const at::Tensor chosen =
      updates.index_select(0, at::tensor(selected, at::kLong));

  // Aggregation: per coordinate, the beta values closest to the median.
  // Sorting the values first makes the stable sort by distance break ties
  // towards the lower value, independently of the selection order.
  const at::Tensor sorted = std::get<0>(at::sort(chosen, /*dim=*/0));
  const at::Tensor distance = (sorted - CoordinateMedian(chosen)).abs();
  const at::Tensor nearest =
      std::get<1>(
          at::sort(distance, /*stable=*/true, /*dim=*/0, /*descending=*/false))
          .narrow(0, 0, beta);
  return sorted.gather(0, nearest).mean(0);
}

}  // namespace

std::unique_ptr<FitAggregator> Bulyan::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  const int64_t f = bulyan_.num_malicious;
  return std::make_unique<PerClientAggregator>(
      std::move(global),
      [f](const at::Tensor& updates, const std::vector<int64_t>& num_examples)
          -> absl::StatusOr<at::Tensor> {
        const int64_t n = updates.size(0);
        if (n < 4 * f + 3) {
          return absl::FailedPreconditionError(absl::StrCat(
              "bulyan with num_malicious = ", f, " needs at least 4 * ", f,
              " + 3 = ", 4 * f + 3, " results, but only ", n, " arrived"));
        }
        return Combine(updates, f);
      });
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeBulyan(
    const nlohmann::json& params, const StrategyContext& context) {
  FedAvgOptions options;
  BulyanOptions bulyan;
  StrategyParams p("bulyan", params);
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options));
  SHOAL_RETURN_IF_ERROR(
      p.Integer("num_malicious", 0, kMaxCount, &bulyan.num_malicious));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  // Checked here, not only per round: a cohort too small for f would
  // otherwise fail every round of the run.
  const int64_t f = bulyan.num_malicious;
  if (4 * f + 3 > static_cast<int64_t>(context.min_fit_clients)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy 'bulyan' with num_malicious = ", f, " needs at least 4 * ", f,
        " + 3 = ", 4 * f + 3,
        " results per round, but min_fit_clients = ", context.min_fit_clients,
        "; raise min_fit_clients or lower num_malicious"));
  }
  return std::make_unique<Bulyan>(std::move(options), bulyan);
}

}  // namespace shoal
