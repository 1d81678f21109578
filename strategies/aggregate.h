// Shared aggregation math for the built-in strategies (one module, as in
// Flower's strategy/aggregate.py): flat views of a model's floating-point
// tensors, and the two aggregators every strategy builds on.
#ifndef SHOAL_STRATEGIES_AGGREGATE_H_
#define SHOAL_STRATEGIES_AGGREGATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/parameters.h"
#include "strategies/strategy.h"

namespace shoal {

// FlatLayout maps a model's floating-point tensors onto one flat vector, in
// order; integer tensors (step counters) are not part of it.
class FlatLayout {
 public:
  explicit FlatLayout(const Parameters& like);
  int64_t size() const { return size_; }
  // FlattenInto copies the floating-point tensors of `params` (compatible
  // with the layout) into `flat`, a contiguous [size()] tensor of any
  // floating-point dtype, such as a row of a larger matrix.
  void FlattenInto(const Parameters& params, const at::Tensor& flat) const;
  // Views returns, for each tensor of the layout's model, a view into `flat`
  // (undefined for integer tensors).
  std::vector<at::Tensor> Views(const at::Tensor& flat) const;
  // Apply returns `base` + `flat_delta` (cast back to each tensor's dtype);
  // integer tensors keep base's values.
  Parameters Apply(const Parameters& base, const at::Tensor& flat_delta) const;

 private:
  std::vector<int64_t> offsets_;  // -1 for integer tensors
  std::vector<std::vector<int64_t>> shapes_;
  int64_t size_ = 0;
};

// WeightedSumAggregator folds sum_i n_i * update_i into one float64 vector
// as results arrive: memory is one model, whatever the number of clients.
// Finish hands the mean update (sum / sum_i n_i) to `finish`, which by
// default adds it to the global model (FedAvg); server-side optimizers
// (FedAvgM, FedAdam, ...) pass their own.
class WeightedSumAggregator : public FitAggregator {
 public:
  // Finisher gets the global model and the flat float64 mean update.
  using Finisher = std::function<absl::StatusOr<Parameters>(
      const Parameters& global, const FlatLayout& layout, const at::Tensor& mean_update)>;
  // Weight of a result; default num_examples.
  using Weigher = std::function<double(const FitRes&)>;

  explicit WeightedSumAggregator(std::shared_ptr<const Parameters> global,
                                 Finisher finish = nullptr, Weigher weigh = nullptr);
  absl::Status Accept(const std::string& client_id, const FitRes& res) override;
  absl::StatusOr<Parameters> Finish(const std::vector<ClientFailure>& failures) override;

  double total_weight() const { return total_weight_; }

 private:
  std::shared_ptr<const Parameters> global_;
  FlatLayout layout_;
  Finisher finish_;
  Weigher weigh_;
  at::Tensor sum_;  // float64 [layout.size()]
  std::vector<at::Tensor> sum_views_;
  double total_weight_ = 0;
  int accepted_ = 0;
};

// PerClientAggregator keeps every update (flattened, float32, [n, D]) for
// strategies that need them one by one (median, trimmed mean, Krum,
// Bulyan). Memory grows with the number of clients: such strategies do not
// aggregate by the mean (Strategy::AggregatesByMean), so secure aggregation
// refuses them. The
// peak is about one copy of the updates, plus one slab (~64 MiB) and what
// the combiner needs on top.
class PerClientAggregator : public FitAggregator {
 public:
  // Combiner turns the stacked updates and their example counts into one
  // flat update ([D]), which is added to the global model. Rows are in
  // client-ID order, not arrival order, so ties and float rounding do not
  // depend on network timing.
  using Combiner = std::function<absl::StatusOr<at::Tensor>(
      const at::Tensor& updates, const std::vector<int64_t>& num_examples)>;

  PerClientAggregator(std::shared_ptr<const Parameters> global, Combiner combine);
  absl::Status Accept(const std::string& client_id, const FitRes& res) override;
  absl::StatusOr<Parameters> Finish(const std::vector<ClientFailure>& failures) override;

 private:
  std::shared_ptr<const Parameters> global_;
  FlatLayout layout_;
  Combiner combine_;
  int64_t rows_per_slab_;
  // The flattened updates in arrival order: update i is row
  // i % rows_per_slab_ of slabs_[i / rows_per_slab_].
  std::vector<at::Tensor> slabs_;
  struct Row {
    std::string client_id;
    int64_t num_examples;
  };
  std::vector<Row> rows_;  // arrival order
};

// CombineColumnBlocks returns `combine` applied to consecutive blocks of
// columns of `updates` ([n, D]), concatenated into one [D] tensor. `combine`
// must reduce each column on its own (a median, a trimmed mean): then the
// result is the same as combine(updates), bit for bit, while the working
// copies that ATen's sort and kthvalue make (the input again, plus an int64
// index per element: 3x the matrix) are one block's worth, ~1M elements.
//
// Example:
//   at::Tensor medians = CombineColumnBlocks(updates, [](const at::Tensor& b) {
//     return std::get<0>(at::kthvalue(b, (b.size(0) + 1) / 2, /*dim=*/0));
//   });
at::Tensor CombineColumnBlocks(
    const at::Tensor& updates,
    const std::function<at::Tensor(const at::Tensor& block)>& combine);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_AGGREGATE_H_
