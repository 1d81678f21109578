#include "client/data/example_source.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::client {
namespace {

class MemorySource : public ExampleSource {
 public:
  explicit MemorySource(Dataset data) : data_(std::move(data)) {}

  const at::Tensor& targets() const override { return data_.targets; }
  std::vector<int64_t> input_shape() const override {
    if (!data_.inputs.defined() || data_.inputs.dim() < 1) return {};
    return std::vector<int64_t>(data_.inputs.sizes().begin() + 1, data_.inputs.sizes().end());
  }
  absl::StatusOr<at::Tensor> Inputs(const at::Tensor& indices) const override {
    try {
      return data_.inputs.index_select(0, indices);
    } catch (const c10::Error& e) {
      // LibTorch checks the indices as it gathers: no extra pass per batch.
      return absl::InvalidArgumentError(
          absl::StrCat("reading examples: ", e.what_without_backtrace()));
    }
  }
  std::shared_ptr<const ExampleSource> Subset(const std::vector<int64_t>& indices) const override {
    return std::make_shared<MemorySource>(data_.Subset(indices));
  }
  const Dataset* memory() const override { return &data_; }

 private:
  Dataset data_;
};

class NormalizedSource : public ExampleSource {
 public:
  NormalizedSource(std::shared_ptr<const ExampleSource> base, Normalization normalization)
      : base_(std::move(base)), normalization_(std::move(normalization)) {}

  const at::Tensor& targets() const override { return base_->targets(); }
  std::vector<int64_t> input_shape() const override { return base_->input_shape(); }
  absl::StatusOr<at::Tensor> Inputs(const at::Tensor& indices) const override {
    absl::StatusOr<at::Tensor> x = base_->Inputs(indices);
    if (x.ok()) ApplyNormalization(normalization_, *x);
    return x;
  }
  std::shared_ptr<const ExampleSource> Subset(const std::vector<int64_t>& indices) const override {
    return std::make_shared<NormalizedSource>(base_->Subset(indices), normalization_);
  }

 private:
  std::shared_ptr<const ExampleSource> base_;
  Normalization normalization_;
};

}  // namespace

std::shared_ptr<const ExampleSource> InMemory(Dataset data) {
  return std::make_shared<MemorySource>(std::move(data));
}

std::shared_ptr<const ExampleSource> Normalized(std::shared_ptr<const ExampleSource> source,
                                                Normalization normalization) {
  if (normalization.mode == Normalization::Mode::kNone) return source;
  return std::make_shared<NormalizedSource>(std::move(source), std::move(normalization));
}

absl::StatusOr<Normalization> ComputeNormalization(const ExampleSource& source, int64_t chunk) {
  const int64_t n = source.size();
  if (n < 2) {
    return absl::InvalidArgumentError(
        "cannot compute a normalization from fewer than 2 examples; give data.normalize a "
        "mean and std");
  }
  NormalizationStats stats;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const at::Tensor index = at::arange(begin, std::min(n, begin + chunk), at::kLong);
    absl::StatusOr<at::Tensor> x = source.Inputs(index);
    if (!x.ok()) return x.status();
    stats.Add(*x);
  }
  return stats.Result();
}

}  // namespace shoal::client
