// UpdateCodec: how a model update becomes the integers a client masks in a
// securely aggregated round, and how the server turns the unmasked sum back
// into the num_examples-weighted mean update.
//
// Layout of the vector (length = the model's element count + 1):
//   [0, d)  the update's elements in parameter order, each multiplied by
//           w / max_weight, then clipped to [-clip, clip] and quantized to
//           2^bits levels with stochastic rounding (secagg/encoding.h);
//   d       w = min(num_examples, max_weight), exact.
// The server decodes sum_i (w_i / W) update_i from the first d sums and
// divides by sum_i w_i / W: the weighted mean, with num_examples = sum_i w_i.
//
// Bound: each element of the decoded mean differs from the weighted mean of
// the clipped, scaled updates by less than n * step * W / sum_i w_i, with
// step = 2 clip / (2^bits - 1); with every client at the cap W that is less
// than one step per element.
#ifndef SHOAL_SECAGG_UPDATE_CODEC_H_
#define SHOAL_SECAGG_UPDATE_CODEC_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/parameters.h"
#include "secagg/encoding.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::secagg {

// UpdateEncoding: the encoding options of a round plus the weight cap. The
// defaults: values in [-1, 1] (after scaling by w / max_weight) in 2^20
// levels, a 48-bit modulus (6 bytes an element on the wire, room for 2^28
// clients), and num_examples counted up to 10,000.
struct UpdateEncoding {
  EncodingOptions values{1.0, 20, uint64_t{1} << 48};  // clip, bits, modulus
  int64_t max_weight = 10000;  // num_examples cap, >= 1

  // Validate also checks that `num_clients` clients' weights and codes
  // cannot wrap the modulus; InvalidArgument naming the option.
  absl::Status Validate(uint64_t num_clients) const;
  // Wire form for the setup message (the modulus travels separately).
  v1::SecAggEncoding ToProto() const;
  static UpdateEncoding FromProto(const v1::SecAggEncoding& proto, uint64_t modulus);
};

// VectorLength is the masked vector's length for a model laid out like
// `layout`.
uint64_t VectorLength(const Parameters& layout);

// EncodeUpdate encodes one client's update (any dtype travels as float32).
// InvalidArgument for a non-finite update, num_examples <= 0, or bad
// options.
absl::StatusOr<std::vector<uint64_t>> EncodeUpdate(const Parameters& update,
                                                   int64_t num_examples,
                                                   const UpdateEncoding& encoding);

struct DecodedAggregate {
  Parameters mean_update;  // laid out like `layout`, in its dtypes
  int64_t total_weight = 0;
};

// DecodeAggregate turns the unmasked sum of `num_clients` clients into the
// weighted mean update. InvalidArgument when the sum does not fit the
// layout or the total weight is impossible.
absl::StatusOr<DecodedAggregate> DecodeAggregate(const std::vector<uint64_t>& sum,
                                                 uint64_t num_clients,
                                                 const Parameters& layout,
                                                 const UpdateEncoding& encoding);

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_UPDATE_CODEC_H_
