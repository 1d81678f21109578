#include "common/sparsify.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

constexpr float kHalfMax = 65504.0f;

}  // namespace

float ToHalfPrecision(float v) {
  return static_cast<float>(c10::Half(std::clamp(v, -kHalfMax, kHalfMax)));
}

int64_t SparseBytes(int64_t k, int64_t n) {
  if (k <= 0) return 0;
  int64_t gap = std::max<int64_t>(1, n / k), varint = 1;
  while (gap >= 128) {
    gap >>= 7;
    ++varint;
  }
  return k * (2 + varint);
}

absl::StatusOr<SparseTensor> TopK(const at::Tensor& x, double fraction, at::Tensor* residual) {
  if (!(fraction > 0 && fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the fraction kept is ", fraction, "; it must be in (0, 1]"));
  }
  if (x.scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError("top-k takes float32 tensors");
  }
  if (residual->defined() && !residual->sizes().equals(x.sizes())) {
    return absl::InvalidArgumentError("the residual's shape differs from the tensor's");
  }
  at::Tensor total = x.detach().to(at::kCPU).contiguous().view({-1}).clone();
  if (residual->defined()) total += residual->to(at::kCPU).contiguous().view({-1});
  const int64_t n = total.numel();
  float* v = total.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(absl::StrCat("value ", i, " is not finite"));
    }
  }
  const int64_t k = n == 0 ? 0 : std::clamp<int64_t>(static_cast<int64_t>(std::ceil(fraction * n)), 1, n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::nth_element(order.begin(), order.begin() + k, order.end(), [v](int64_t a, int64_t b) {
    const float fa = std::fabs(v[a]), fb = std::fabs(v[b]);
    return fa != fb ? fa > fb : a < b;
  });
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  SparseTensor s;
  s.shape = x.sizes().vec();
  s.indices = order;
  s.values.reserve(order.size());
  for (int64_t i : order) {
    const float sent = ToHalfPrecision(v[i]);
    s.values.push_back(sent);
    v[i] -= sent;  // what stays behind is the residual (exact: Sterbenz)
  }
  *residual = total.view(x.sizes());
  return s;
}

absl::StatusOr<at::Tensor> Densify(const SparseTensor& s, int64_t max_elements) {
  int64_t n = 1;
  for (int64_t d : s.shape) {
    if (d < 0 || (d > 0 && n > max_elements / d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the shape has a negative dimension or more than ", max_elements, " elements"));
    }
    n *= d;
  }
  if (s.indices.size() != s.values.size()) {
    return absl::InvalidArgumentError(absl::StrCat(s.indices.size(), " indices but ",
                                                   s.values.size(), " values"));
  }
  for (size_t j = 0; j < s.indices.size(); ++j) {
    const int64_t i = s.indices[j];
    if (i < 0 || i >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("index ", j, " is ", i, ", outside a tensor of ", n, " values"));
    }
    if (j > 0 && i <= s.indices[j - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("index ", j, " does not increase (indices are sorted and unique)"));
    }
    if (!std::isfinite(s.values[j])) {
      return absl::InvalidArgumentError(absl::StrCat("value ", j, " is not finite"));
    }
  }
  at::Tensor out = at::zeros({n}, at::TensorOptions().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  for (size_t j = 0; j < s.indices.size(); ++j) o[s.indices[j]] = s.values[j];
  return out.view(s.shape);
}

}  // namespace shoal
