// Top-k sparsification with error feedback, for compressed updates (issue
// 17). A device sends only the largest `fraction` of an update's values
// (by magnitude) with their indices, and keeps what it dropped as a
// residual that is added to its next update, so nothing is lost for good,
// only delayed (Stich et al. 2018; Lin et al. 2018, "Deep Gradient
// Compression"). The server densifies what arrives; its decoder checks
// every index and value first.
#ifndef SHOAL_COMMON_SPARSIFY_H_
#define SHOAL_COMMON_SPARSIFY_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal {

// SparseTensor: the kept values of a tensor and where they go.
struct SparseTensor {
  std::vector<int64_t> shape;
  std::vector<int64_t> indices;  // into the flattened tensor, strictly increasing
  std::vector<float> values;     // one per index
};

// TopK keeps the ceil(fraction * n) values of `x + *residual` largest in
// magnitude (ties broken by the lower index; at least one value of a
// non-empty tensor), each rounded to half precision (saturating at
// ±65504: they travel as 2 bytes), and sets `*residual` to the rest,
// rounding included, so that (exactly, but for values past ±131008)
//   x + residual (before) == Densify(result) + residual (after).
// An undefined `*residual` counts as zeros and is created. InvalidArgument
// for a fraction outside (0, 1], a tensor that is not float32, a residual
// of another shape, or a value that is not finite.
absl::StatusOr<SparseTensor> TopK(const at::Tensor& x, double fraction, at::Tensor* residual);

// ToHalfPrecision rounds to the nearest half float (saturating at ±65504).
float ToHalfPrecision(float v);

// Densify rebuilds the float32 tensor (zeros where nothing was kept). It
// checks first: a shape of at most `max_elements` non-negative dimensions,
// as many values as indices, indices strictly increasing and in range,
// finite values. InvalidArgument naming what is wrong otherwise.
absl::StatusOr<at::Tensor> Densify(const SparseTensor& s, int64_t max_elements = int64_t{1} << 31);

// SparseBytes estimates the payload of `k` values kept of `n`: a half
// float each, and an index gap of about n / k as a varint.
int64_t SparseBytes(int64_t k, int64_t n);

}  // namespace shoal

#endif  // SHOAL_COMMON_SPARSIFY_H_
