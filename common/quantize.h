// Quantization of float32 tensors to 8 or 4 bits per value with stochastic
// rounding, for compressed updates and downloads (issue 17). Both ends use
// it: a device quantizes its update, the server dequantizes it (and the
// reverse for downloads), so the decoder is as strict as every other parser
// of what arrives from outside.
//
// Scheme: the tensor, flattened, is cut into blocks of `block` values; each
// block keeps its minimum `lo` and step `scale` = (max - min) / (2^bits - 1)
// as float32, and each value the code c in [0, 2^bits - 1] with
//   c = floor((x - lo) / scale + u),  u ~ U[0, 1)   (stochastic rounding)
// so that lo + c * scale is an unbiased estimate of x (E over u equals x,
// up to float rounding) and never more than one `scale` away from it. A
// block whose values are all equal has scale 0 and is exact. 4-bit codes
// are packed two to a byte, low nibble first.
//
// Bytes: 8 bits: n + 8 * ceil(n / block); 4 bits: ceil(n / 2) + 8 *
// ceil(n / block). With block 256: 25.4 % and 12.9 % of float32.
#ifndef SHOAL_COMMON_QUANTIZE_H_
#define SHOAL_COMMON_QUANTIZE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal {

struct QuantizeOptions {
  int bits = 8;          // 8 or 4
  int64_t block = 256;   // values per scale, 1 to 65536
};

// QuantizedTensor: a quantized tensor as it travels.
struct QuantizedTensor {
  int bits = 8;
  int64_t block = 256;
  std::vector<int64_t> shape;  // the original shape
  std::vector<float> lo;       // per block
  std::vector<float> scale;    // per block, >= 0
  std::string codes;           // packed codes
};

// ValidateQuantizeOptions: InvalidArgument naming the field otherwise.
absl::Status ValidateQuantizeOptions(const QuantizeOptions& options);

// Quantize quantizes a float32 tensor with stochastic rounding drawn from
// `seed` (the same seed and tensor give the same codes). InvalidArgument for
// another dtype, bad options, or a value that is not finite.
absl::StatusOr<QuantizedTensor> Quantize(const at::Tensor& x, const QuantizeOptions& options,
                                         uint64_t seed);

// Dequantize rebuilds the float32 tensor. It checks everything before
// reading: bits, block, a shape whose element count is non-negative and at
// most `max_elements`, as many scales and minimums as blocks, codes of
// exactly the packed size, and finite minimums and scales (scale >= 0).
// InvalidArgument naming what is wrong otherwise.
absl::StatusOr<at::Tensor> Dequantize(const QuantizedTensor& q,
                                      int64_t max_elements = int64_t{1} << 31);

// QuantizedBytes is the payload size of a quantized tensor of `n` values
// (codes, minimums and scales), to compare with 4 * n for float32.
int64_t QuantizedBytes(int64_t n, const QuantizeOptions& options);

}  // namespace shoal

#endif  // SHOAL_COMMON_QUANTIZE_H_
