#include "strategies/aggregate.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

// Elements per at::parallel_for chunk in the fold: large enough that a
// thread's start-up is noise next to streaming its chunk (~0.5 MB read).
constexpr int64_t kFoldGrain = 1 << 17;

// AddScaledFloat32 does acc[j] += weight * (double)x[j] for j < n. ATen's
// mixed-dtype add_ (float32 into float64) casts through a temporary and ran
// at ~8 % of memcpy's rate; this plain loop vectorizes (convert, multiply,
// add) and is bounded by memory instead. Each element is computed the same
// way whatever the chunking, so the thread count does not change the result.
void AddScaledFloat32(const float* x, double weight, double* acc, int64_t n) {
  at::parallel_for(0, n, kFoldGrain, [=](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j)
      acc[j] += weight * static_cast<double>(x[j]);
  });
}

// Elements per block in CombineColumnBlocks: 4 MiB of float32, so the
// working copies (~4x that) stay small next to the stacked updates, while a
// block still has enough columns (>= 1,024 for 1,000 clients) for ATen to
// split among threads and for the per-block overhead to be noise.
constexpr int64_t kBlockElements = 1 << 20;

// Block widths are a multiple of this many columns, so that every column
// keeps its position modulo the SIMD width (and modulo ATen's 128-byte
// per-thread column rounding) within its block: a reduction vectorized over
// columns then treats each column exactly as it does in the whole matrix.
constexpr int64_t kBlockAlign = 64;

// Smallest slab of updates in PerClientAggregator: above the largest
// threshold (32 MiB) at which glibc's malloc serves a request with mmap.
constexpr int64_t kSlabBytes = int64_t{64} << 20;

}  // namespace

at::Tensor CombineColumnBlocks(
    const at::Tensor& updates,
    const std::function<at::Tensor(const at::Tensor& block)>& combine) {
  const int64_t n = std::max<int64_t>(updates.size(0), 1);
  const int64_t d = updates.size(1);
  const int64_t width =
      std::max(kBlockAlign, kBlockElements / n / kBlockAlign * kBlockAlign);
  if (d <= width) return combine(updates);
  // Each block's result goes straight into `out` rather than into a list to
  // concatenate: small tensors kept alive between the blocks' large working
  // copies fragmented the heap, which was measured growing by ~23 MiB (a
  // block's working copies) per block.
  at::Tensor out;
  for (int64_t start = 0; start < d; start += width) {
    const int64_t cols = std::min(width, d - start);
    at::Tensor part = combine(updates.narrow(1, start, cols));
    if (!out.defined()) out = at::empty({d}, part.options());
    out.narrow(0, start, cols).copy_(part);
  }
  return out;
}

FlatLayout::FlatLayout(const Parameters& like) {
  for (size_t i = 0; i < like.size(); ++i) {
    const at::Tensor& t = like.tensor(i);
    shapes_.push_back(t.sizes().vec());
    if (at::isFloatingType(t.scalar_type())) {
      offsets_.push_back(size_);
      size_ += t.numel();
    } else {
      offsets_.push_back(-1);
    }
  }
}

std::vector<at::Tensor> FlatLayout::Views(const at::Tensor& flat) const {
  std::vector<at::Tensor> views(offsets_.size());
  for (size_t i = 0; i < offsets_.size(); ++i) {
    if (offsets_[i] < 0) continue;
    int64_t numel = 1;
    for (int64_t d : shapes_[i]) numel *= d;
    views[i] = flat.narrow(0, offsets_[i], numel).view(shapes_[i]);
  }
  return views;
}

void FlatLayout::FlattenInto(const Parameters& params,
                             const at::Tensor& flat) const {
  std::vector<at::Tensor> views = Views(flat);
  for (size_t i = 0; i < views.size(); ++i) {
    if (views[i].defined()) views[i].copy_(params.tensor(i));
  }
}

Parameters FlatLayout::Apply(const Parameters& base, const at::Tensor& flat_delta) const {
  std::vector<at::Tensor> views = Views(flat_delta);
  Parameters out;
  for (size_t i = 0; i < base.size(); ++i) {
    const at::Tensor& b = base.tensor(i);
    if (!views[i].defined()) {
      out.Add(base.name(i), b.clone());
      continue;
    }
    out.Add(base.name(i), (b.to(at::kDouble) + views[i]).to(b.scalar_type()));
  }
  return out;
}

WeightedSumAggregator::WeightedSumAggregator(std::shared_ptr<const Parameters> global,
                                             Finisher finish, Weigher weigh)
    : global_(std::move(global)), layout_(*global_), finish_(std::move(finish)),
      weigh_(std::move(weigh)) {
  // float64 accumulation: exact for the weights, and the order results
  // arrive in (network timing) changes the outcome only by float64 rounding.
  sum_ = at::zeros({layout_.size()}, at::TensorOptions().dtype(at::kDouble));
  sum_views_ = layout_.Views(sum_);
}

absl::Status WeightedSumAggregator::Accept(const std::string& client_id,
                                           const FitRes& res) {
  const double weight = weigh_ ? weigh_(res) : static_cast<double>(res.num_examples);
  if (!(weight > 0) || !std::isfinite(weight)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client '", client_id, "' has aggregation weight ", weight,
        " (num_examples = ", res.num_examples, "); it must be positive"));
  }
  for (size_t i = 0; i < sum_views_.size(); ++i) {
    at::Tensor& sum = sum_views_[i];
    if (!sum.defined()) continue;
    const at::Tensor& update = res.update.tensor(i);
    // float32 is what clients send; other dtypes (float16, float64) and
    // unusual layouts are rare enough for ATen's general path.
    if (update.scalar_type() == at::kFloat && update.is_contiguous() &&
        update.sizes() == sum.sizes()) {
      AddScaledFloat32(update.data_ptr<float>(), weight, sum.data_ptr<double>(),
                       sum.numel());
    } else {
      sum.add_(update, weight);
    }
  }
  total_weight_ += weight;
  ++accepted_;
  return absl::OkStatus();
}

absl::StatusOr<Parameters> WeightedSumAggregator::Finish(
    const std::vector<ClientFailure>& failures) {
  if (accepted_ == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no results to aggregate (", failures.size(), " failures)"));
  }
  const at::Tensor mean = sum_ / total_weight_;
  if (finish_) return finish_(*global_, layout_, mean);
  return layout_.Apply(*global_, mean);
}

PerClientAggregator::PerClientAggregator(
    std::shared_ptr<const Parameters> global, Combiner combine)
    : global_(std::move(global)),
      layout_(*global_),
      combine_(std::move(combine)) {
  // Updates go into slabs of at least kSlabBytes rather than a tensor each:
  // malloc serves an allocation that large with a mapping of its own, which
  // a free returns to the system. Update-sized tensors came from the heap,
  // which was measured growing by two updates per result (the freed
  // incoming updates' space was not reused) and giving nothing back until
  // the last one was freed: 3x the updates at the peak, with the stacking.
  const int64_t row_bytes = std::max<int64_t>(layout_.size() * 4, 1);
  rows_per_slab_ =
      std::max<int64_t>(1, (kSlabBytes + row_bytes - 1) / row_bytes);
}

absl::Status PerClientAggregator::Accept(const std::string& client_id, const FitRes& res) {
  if (res.num_examples <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client '", client_id, "' reported num_examples = ", res.num_examples));
  }
  const int64_t row = static_cast<int64_t>(rows_.size()) % rows_per_slab_;
  if (row == 0) {
    // Pages the slab's unused rows never touch cost no memory.
    slabs_.push_back(at::empty({rows_per_slab_, layout_.size()},
                               at::TensorOptions().dtype(at::kFloat)));
  }
  layout_.FlattenInto(res.update, slabs_.back()[row]);
  rows_.push_back({client_id, res.num_examples});
  return absl::OkStatus();
}

absl::StatusOr<Parameters> PerClientAggregator::Finish(
    const std::vector<ClientFailure>& failures) {
  if (rows_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no results to aggregate (", failures.size(), " failures)"));
  }
  // position[i]: where update i (arrival order) goes in client-ID order.
  const int64_t n = static_cast<int64_t>(rows_.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [this](int64_t a, int64_t b) {
    return rows_[a].client_id < rows_[b].client_id;
  });
  std::vector<int64_t> position(n);
  std::vector<int64_t> num_examples(n);
  for (int64_t p = 0; p < n; ++p) {
    position[order[p]] = p;
    num_examples[p] = rows_[order[p]].num_examples;
  }
  // Scatter slab by slab, freeing each slab once copied: the peak stays one
  // copy of the updates and a slab.
  at::Tensor stacked =
      at::empty({n, layout_.size()}, at::TensorOptions().dtype(at::kFloat));
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor& slab = slabs_[i / rows_per_slab_];
    stacked[position[i]].copy_(slab[i % rows_per_slab_]);
    if ((i + 1) % rows_per_slab_ == 0 || i + 1 == n) slab = at::Tensor();
  }
  slabs_.clear();
  rows_.clear();
  absl::StatusOr<at::Tensor> combined = combine_(stacked, num_examples);
  if (!combined.ok()) return combined.status();
  return layout_.Apply(*global_, combined->to(at::kDouble));
}

}  // namespace shoal
