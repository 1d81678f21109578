// ReadTorchFile: tensors saved from Python with torch.save, read into a
// Dataset.
#ifndef SHOAL_CLIENT_DATA_TORCH_FILE_H_
#define SHOAL_CLIENT_DATA_TORCH_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"

namespace shoal::client {

// The largest file ReadTorchFile reads: 4 GiB. It holds the file and a copy
// while unpickling, so budget about twice the file's size in memory.
inline constexpr uint64_t kMaxTorchFileBytes = uint64_t{4} << 30;
// The most dimensions `x` may have (N and up to 7 more).
inline constexpr int64_t kMaxTorchFileDims = 8;

// ReadTorchFile reads a file written by Python's
//   torch.save({"x": inputs, "y": targets}, path)
// in the zip format torch.save uses by default since torch 1.6, on the CPU.
//   x: [N, ...] with 2 to kMaxTorchFileDims dimensions, any floating or
//      integer dtype -> inputs float32 (integers are converted, not scaled).
//   y: an integer dtype, [N] -> targets int64 class indices (each >= 0); or
//      a floating dtype, [N] or [N, K] -> targets float32.
// N must be > 0 and the same in both. NaN and infinities are refused.
// The result owns its memory (a copy of what was unpickled).
//
// Example (Python, then C++):
//   torch.save({"x": torch.randn(100, 3, 32, 32), "y": labels}, "train.pt")
//   SHOAL_ASSIGN_OR_RETURN(Dataset data, ReadTorchFile("train.pt"));
//
// Errors (naming the file):
//   NotFound: the file is missing.
//   ResourceExhausted: it is larger than kMaxTorchFileBytes, or its tensors
//     cannot be held in memory.
//   InvalidArgument: not a torch.save zip file (e.g. a legacy
//     _use_new_zipfile_serialization=False file), damaged or truncated, not
//     a dict, keys other than exactly "x" and "y" (the message names the
//     missing and extra ones), values that are not tensors, bad dtypes or
//     dimensions, different N, a negative class label, NaN or infinity, or a
//     tensor that claims more elements than the file holds (an expanded
//     view: save x.contiguous()).
// Nothing is returned on any error.
absl::StatusOr<Dataset> ReadTorchFile(const std::string& path);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_TORCH_FILE_H_
