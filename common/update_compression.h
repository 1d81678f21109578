// Compressed updates (issue 17): a device sends the change of each float32
// tensor from the model it trained from, quantized (8 or 4 bits) or
// sparsified (top-k with error feedback), and the server adds the decoded
// change back to that model. Tensors of other dtypes (counters such as
// BatchNorm's num_batches_tracked) travel in full. Not yet used by the
// agent or the service.
#ifndef SHOAL_COMMON_UPDATE_COMPRESSION_H_
#define SHOAL_COMMON_UPDATE_COMPRESSION_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/parameters.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

enum class Compression { kNone, kQuantize8, kQuantize4, kTopK };

struct CompressionOptions {
  Compression kind = Compression::kNone;
  int64_t block = 256;     // quantization: values per scale
  double fraction = 0.01;  // top-k: the fraction of values sent
};

// ParseCompression reads "none", "q8", "q4" or "topk"; InvalidArgument
// listing them otherwise.
absl::StatusOr<Compression> ParseCompression(const std::string& name);
const char* CompressionName(Compression kind);
absl::Status ValidateCompressionOptions(const CompressionOptions& options);

// CompressUpdate writes `weights` (the trained model) as its change from
// `global` (the model it was trained from) into `out`: float32 tensors
// compressed into out->compressed, the others in full into out->tensors.
// `seed` drives stochastic rounding. `residuals` (top-k only; may not be
// null then) holds what earlier rounds dropped, by tensor name: it is added
// before choosing and updated after. InvalidArgument when the two models
// do not match (names, shapes, dtypes) or a value is not finite.
absl::Status CompressUpdate(const Parameters& global, const Parameters& weights,
                            const CompressionOptions& options, uint64_t seed,
                            std::map<std::string, at::Tensor>* residuals, v1::UpdateProto* out);

// DecompressUpdate rebuilds the trained model: `global` plus each decoded
// change, and the tensors sent in full. Every tensor of `global` must come
// exactly once, by name, with its shape (and dtype, for those in full);
// every payload is checked by the codecs' decoders. InvalidArgument naming
// the tensor otherwise; `global` is never changed.
absl::StatusOr<Parameters> DecompressUpdate(const Parameters& global,
                                            const v1::UpdateProto& update);

}  // namespace shoal

#endif  // SHOAL_COMMON_UPDATE_COMPRESSION_H_
