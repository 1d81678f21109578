#include "common/quantize.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/random.h"

namespace shoal {
namespace {

constexpr int64_t kMaxBlock = 65536;

int64_t NumBlocks(int64_t n, int64_t block) { return n == 0 ? 0 : (n + block - 1) / block; }

int64_t CodeBytes(int64_t n, int bits) { return bits == 8 ? n : (n + 1) / 2; }

// A float in [0, 1) from 24 random bits: enough for rounding to 8 bits.
float UniformFloat(Rng& rng) { return static_cast<float>(rng() >> 40) * (1.0f / 16777216.0f); }

}  // namespace

absl::Status ValidateQuantizeOptions(const QuantizeOptions& options) {
  if (options.bits != 8 && options.bits != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("bits is ", options.bits, "; quantization takes 8 or 4"));
  }
  if (options.block < 1 || options.block > kMaxBlock) {
    return absl::InvalidArgumentError(
        absl::StrCat("block is ", options.block, "; it must be in [1, ", kMaxBlock, "]"));
  }
  return absl::OkStatus();
}

int64_t QuantizedBytes(int64_t n, const QuantizeOptions& options) {
  return CodeBytes(n, options.bits) + 8 * NumBlocks(n, options.block);
}

absl::StatusOr<QuantizedTensor> Quantize(const at::Tensor& x, const QuantizeOptions& options,
                                         uint64_t seed) {
  if (absl::Status valid = ValidateQuantizeOptions(options); !valid.ok()) return valid;
  if (x.scalar_type() != at::kFloat) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantization takes float32 tensors, not ", std::string(c10::toString(x.scalar_type()))));
  }
  const at::Tensor flat = x.detach().to(at::kCPU).contiguous().view({-1});
  const int64_t n = flat.numel();
  const float* v = flat.data_ptr<float>();
  QuantizedTensor q;
  q.bits = options.bits;
  q.block = options.block;
  q.shape = x.sizes().vec();
  const int64_t blocks = NumBlocks(n, options.block);
  q.lo.resize(static_cast<size_t>(blocks));
  q.scale.resize(static_cast<size_t>(blocks));
  q.codes.assign(static_cast<size_t>(CodeBytes(n, options.bits)), '\0');
  const int levels = (1 << options.bits) - 1;
  Rng rng(SplitMix64(seed));
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * options.block;
    const int64_t end = std::min(n, begin + options.block);
    float lo = std::numeric_limits<float>::infinity();
    float hi = -lo;
    for (int64_t i = begin; i < end; ++i) {
      if (!std::isfinite(v[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("value ", i, " is not finite; only finite tensors are quantized"));
      }
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    // In float64: hi - lo of two finite floats may overflow float32 (the
    // step, at most that over 15, does not).
    const float scale = static_cast<float>((static_cast<double>(hi) - lo) / levels);
    q.lo[static_cast<size_t>(b)] = lo;
    q.scale[static_cast<size_t>(b)] = scale;
    for (int64_t i = begin; i < end; ++i) {
      int code = 0;
      if (scale > 0) {
        const double position = (static_cast<double>(v[i]) - lo) / scale + UniformFloat(rng);
        code = static_cast<int>(std::clamp(std::floor(position), 0.0, static_cast<double>(levels)));
      }
      if (options.bits == 8) {
        q.codes[static_cast<size_t>(i)] = static_cast<char>(code);
      } else {
        char& byte = q.codes[static_cast<size_t>(i / 2)];
        byte = static_cast<char>(static_cast<unsigned char>(byte) |
                                 (i % 2 == 0 ? code : code << 4));
      }
    }
  }
  return q;
}

absl::StatusOr<at::Tensor> Dequantize(const QuantizedTensor& q, int64_t max_elements) {
  if (absl::Status valid = ValidateQuantizeOptions({q.bits, q.block}); !valid.ok()) return valid;
  int64_t n = 1;
  for (int64_t d : q.shape) {
    if (d < 0 || (d > 0 && n > max_elements / d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the shape has a negative dimension or more than ", max_elements, " elements"));
    }
    n *= d;
  }
  const int64_t blocks = NumBlocks(n, q.block);
  if (static_cast<int64_t>(q.lo.size()) != blocks ||
      static_cast<int64_t>(q.scale.size()) != blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a tensor of ", n, " values in blocks of ", q.block, " has ", blocks,
        " blocks, but the payload has ", q.lo.size(), " minimums and ", q.scale.size(),
        " scales"));
  }
  if (static_cast<int64_t>(q.codes.size()) != CodeBytes(n, q.bits)) {
    return absl::InvalidArgumentError(absl::StrCat("the codes are ", q.codes.size(),
                                                   " bytes; ", n, " values at ", q.bits,
                                                   " bits take ", CodeBytes(n, q.bits)));
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const float lo = q.lo[static_cast<size_t>(b)];
    const float scale = q.scale[static_cast<size_t>(b)];
    if (!std::isfinite(lo) || !std::isfinite(scale) || scale < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("block ", b, " has a minimum or scale that is not finite, or a "
                                    "negative scale"));
    }
    const double top = lo + static_cast<double>((1 << q.bits) - 1) * scale;
    if (!std::isfinite(static_cast<float>(top))) {
      return absl::InvalidArgumentError(
          absl::StrCat("block ", b, " would decode to values beyond float32"));
    }
  }
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  const auto* codes = reinterpret_cast<const unsigned char*>(q.codes.data());
  for (int64_t i = 0; i < n; ++i) {
    const int code = q.bits == 8 ? codes[i] : (i % 2 == 0 ? codes[i / 2] & 0x0f : codes[i / 2] >> 4);
    const size_t b = static_cast<size_t>(i / q.block);
    o[i] = static_cast<float>(q.lo[b] + code * static_cast<double>(q.scale[b]));
  }
  return out.view(q.shape);
}

}  // namespace shoal
