#include "client/data/normalization.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace shoal::client {
namespace {

// The inputs' axis that mean/std values index: channels of [N, C, ...]
// inputs, features of [N, F] ones.
constexpr int64_t kAxis = 1;

// PerAxis reshapes `values` (one per channel or feature) to broadcast over
// inputs of `dim` dimensions: [1, C, 1, ...].
at::Tensor PerAxis(const std::vector<double>& values, int64_t dim) {
  std::vector<int64_t> shape(static_cast<size_t>(dim), 1);
  shape[kAxis] = static_cast<int64_t>(values.size());
  return at::tensor(values, at::dtype(at::kDouble)).to(at::kFloat).view(shape);
}

// PerAxisOf reshapes a [C] tensor the same way.
at::Tensor PerAxisOf(const at::Tensor& values, int64_t dim) {
  std::vector<int64_t> shape(static_cast<size_t>(dim), 1);
  shape[kAxis] = values.numel();
  return values.view(shape);
}

std::vector<int64_t> ReduceAxes(int64_t dim) {
  std::vector<int64_t> reduce;
  for (int64_t d = 0; d < dim; ++d) {
    if (d != kAxis) reduce.push_back(d);
  }
  return reduce;
}

}  // namespace

absl::Status CheckNormalization(const Normalization& normalization, int64_t width) {
  if (normalization.mode == Normalization::Mode::kNone) return absl::OkStatus();
  const size_t n = normalization.mean.size();
  if (n == 0 || normalization.std.size() != n || (n != 1 && static_cast<int64_t>(n) != width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.normalize: mean and std need 1 value each or one per channel/feature (", width,
        "), got ", normalization.mean.size(), " and ", normalization.std.size()));
  }
  for (size_t i = 0; i < n; ++i) {
    const double mean = normalization.mean[i];
    const double std = normalization.std[i];
    if (!std::isfinite(mean) || !(std > 0) || !std::isfinite(std)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.normalize: value ", i, " has mean ", mean, " and std ", std,
          "; the mean must be finite and the std finite and > 0"));
    }
  }
  return absl::OkStatus();
}

void ApplyNormalization(const Normalization& normalization, at::Tensor& x) {
  if (normalization.mode == Normalization::Mode::kNone || normalization.mean.empty()) return;
  if (normalization.mean.size() == 1) {
    x.sub_(normalization.mean[0]).div_(normalization.std[0]);
  } else {
    x.sub_(PerAxis(normalization.mean, x.dim())).div_(PerAxis(normalization.std, x.dim()));
  }
}

void NormalizationStats::Add(const at::Tensor& x) {
  if (x.size(0) == 0) return;
  const std::vector<int64_t> reduce = ReduceAxes(x.dim());
  const at::Tensor x64 = x.to(at::kDouble);
  const double count = static_cast<double>(x.numel() / x.size(kAxis));
  const at::Tensor mean = x64.mean(reduce);
  const at::Tensor m2 = (x64 - PerAxisOf(mean, x.dim())).square().sum(reduce);
  if (examples_ == 0) {
    mean_ = mean;
    m2_ = m2;
  } else {
    const double total = count_ + count;
    const at::Tensor delta = mean - mean_;
    mean_ = mean_ + delta * (count / total);
    m2_ = m2_ + m2 + delta.square() * (count_ * count / total);
  }
  count_ += count;
  examples_ += x.size(0);
}

Normalization NormalizationStats::Result() const {
  Normalization out;
  out.mode = Normalization::Mode::kGiven;
  if (examples_ == 0) return out;
  const at::Tensor mean = mean_.contiguous();
  const at::Tensor std = (m2_ / count_).sqrt().contiguous();
  out.mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
  out.std.assign(std.data_ptr<double>(), std.data_ptr<double>() + std.numel());
  // A constant feature has std 0: leave its scale alone (std 1).
  for (double& s : out.std) {
    if (!(s > 1e-12)) s = 1;
  }
  return out;
}

}  // namespace shoal::client
