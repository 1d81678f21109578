// Model downloads as a delta (issue 17): a device that holds version b of
// the global model fetches version v as the change of its bytes from b's.
// Both are serialized ParametersProto of one model, so they have the same
// length and layout and differ only in the tensors' data: their XOR is zero
// wherever they agree, and, with the bytes of each 4-byte word gathered into
// planes (sign and exponent bytes together), deflate (zlib) packs it well.
// Lossless: the device rebuilds v's bytes exactly, then checks them against
// the task's SHA-256 and signature as it does any download. On the main
// job's CNN a round's delta is 74 to 83 % of the model, and under 1 %
// when only the output layer trains
// (docs/benchmarks.md).
#ifndef SHOAL_COMMON_MODEL_DELTA_H_
#define SHOAL_COMMON_MODEL_DELTA_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// EncodeModelDelta returns `target`'s bytes as a delta from `base`'s.
// InvalidArgument when their lengths differ (another model: send it whole).
absl::StatusOr<std::string> EncodeModelDelta(absl::string_view base, absl::string_view target);

// DecodeModelDelta rebuilds the target's bytes from `base` and a delta.
// InvalidArgument when the delta is not deflate data of exactly
// base.size() bytes (it never inflates past that, whatever it claims).
absl::StatusOr<std::string> DecodeModelDelta(absl::string_view base, absl::string_view delta);

}  // namespace shoal

#endif  // SHOAL_COMMON_MODEL_DELTA_H_
