// Compressed updates (issue 17): a device sends its update (FitRes::update,
// each tensor's change from the task's model) with every float32 tensor
// quantized (8 or 4 bits) or sparsified (top-k with error feedback), and
// the server decodes it against the task's model, which gives each tensor's
// name, dtype and shape. Tensors of other dtypes (counters such as
// BatchNorm's num_batches_tracked) travel in full.
//
// What composes with what: quantization is unbiased (stochastic rounding),
// so every strategy takes it; top-k sends a few coordinates per client, so
// a strategy that compares clients coordinate-wise or by distance (median,
// trimmed mean, Krum, Bulyan) refuses it (Strategy::CheckCompression).
// Secure aggregation refuses both: its encoding already quantizes, and a
// masked input cannot be sparse. Client-side DP clipping refuses both too:
// the clipped norm would no longer bound what is sent.
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

// The options as a fit task carries them (FitConfig.compression) and back;
// an unset message or kind "" is kNone. InvalidArgument for an unknown
// kind or bad options.
void CompressionToProto(const CompressionOptions& options, v1::UpdateCompression* proto);
absl::StatusOr<CompressionOptions> CompressionFromProto(const v1::UpdateCompression& proto);

// CompressedUploadBytes is the payload an update of `like`'s shapes takes
// compressed with `options`: codes, scales and indices (no framing). The
// simulator charges its links with it.
int64_t CompressedUploadBytes(const Parameters& like, const CompressionOptions& options);

// CompressUpdate writes `update` into `out`: float32 tensors compressed
// into out->compressed, the others in full into out->tensors. `seed`
// drives stochastic rounding. `residuals` (top-k only; may not be null
// then) holds what earlier rounds dropped, by tensor name: it is added
// before choosing and updated after. InvalidArgument for a value that is
// not finite or a residual of another shape.
absl::Status CompressUpdate(const Parameters& update, const CompressionOptions& options,
                            uint64_t seed, std::map<std::string, at::Tensor>* residuals,
                            v1::UpdateProto* out);

// DecompressUpdate rebuilds the update from its compressed tensors and
// those sent in full. Every tensor of `like` (the task's model) must come
// exactly once, by name, with its shape (and dtype, for those in full);
// every payload is checked by the codecs' decoders. InvalidArgument naming
// the tensor otherwise.
absl::StatusOr<Parameters> DecompressUpdate(const Parameters& like,
                                            const v1::UpdateProto& update);

// ParseFitUpload reads a fit result as uploaded (a serialized UpdateProto):
// the update, compressed or not (decoded against `like`), and the auxiliary
// tensors, which always travel in full. InvalidArgument naming what is wrong.
absl::Status ParseFitUpload(const std::string& bytes, const Parameters& like, Parameters* update,
                            Parameters* aux);

}  // namespace shoal

#endif  // SHOAL_COMMON_UPDATE_COMPRESSION_H_
