#include "secagg/update_codec.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "secagg/crypto.h"

namespace shoal::secagg {

absl::Status UpdateEncoding::Validate(uint64_t num_clients) const {
  SHOAL_RETURN_IF_ERROR(values.Validate());
  if (max_weight < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secure_aggregation.max_weight must be >= 1, got ", max_weight));
  }
  if (num_clients > values.MaxClients()) {
    return absl::InvalidArgumentError(absl::StrCat(
        num_clients, " clients' ", values.bits, "-bit codes could wrap the modulus 2^",
        std::log2(static_cast<double>(values.modulus)), " (at most ", values.MaxClients(),
        "): raise secure_aggregation.modulus_bits or lower bits"));
  }
  const double weights = static_cast<double>(num_clients) * static_cast<double>(max_weight);
  if (weights >= static_cast<double>(values.modulus)) {
    return absl::InvalidArgumentError(absl::StrCat(
        num_clients, " clients of weight up to ", max_weight,
        " could wrap the modulus: lower secure_aggregation.max_weight"));
  }
  return absl::OkStatus();
}

v1::SecAggEncoding UpdateEncoding::ToProto() const {
  v1::SecAggEncoding proto;
  proto.set_clip(values.clip);
  proto.set_bits(values.bits);
  proto.set_max_weight(max_weight);
  return proto;
}

UpdateEncoding UpdateEncoding::FromProto(const v1::SecAggEncoding& proto, uint64_t modulus) {
  UpdateEncoding encoding;
  encoding.values.clip = proto.clip();
  encoding.values.bits = proto.bits();
  encoding.values.modulus = modulus;
  encoding.max_weight = proto.max_weight();
  return encoding;
}

uint64_t VectorLength(const Parameters& layout) {
  return static_cast<uint64_t>(layout.NumElements()) + 1;
}

absl::StatusOr<std::vector<uint64_t>> EncodeUpdate(const Parameters& update,
                                                   int64_t num_examples,
                                                   const UpdateEncoding& encoding) {
  SHOAL_RETURN_IF_ERROR(encoding.Validate(1));
  if (num_examples <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_examples must be positive, got ", num_examples));
  }
  const int64_t weight = std::min(num_examples, encoding.max_weight);
  const float scale = static_cast<float>(static_cast<double>(weight) /
                                         static_cast<double>(encoding.max_weight));
  std::vector<float> values;
  values.reserve(static_cast<size_t>(update.NumElements()));
  for (size_t i = 0; i < update.size(); ++i) {
    // Any dtype travels as float32 (an integer buffer's change included)
    // and is cast back to the model's dtype when decoded.
    const at::Tensor flat = update.tensor(i).to(at::kFloat).contiguous().view(-1);
    const float* p = flat.data_ptr<float>();
    for (int64_t j = 0; j < flat.numel(); ++j) values.push_back(p[j] * scale);
  }
  SHOAL_ASSIGN_OR_RETURN(Bytes seed, RandomBytes(kKeySize));
  SHOAL_ASSIGN_OR_RETURN(std::vector<uint64_t> codes,
                         Encode(values.data(), values.size(), encoding.values, seed));
  codes.push_back(static_cast<uint64_t>(weight));
  return codes;
}

absl::StatusOr<DecodedAggregate> DecodeAggregate(const std::vector<uint64_t>& sum,
                                                 uint64_t num_clients,
                                                 const Parameters& layout,
                                                 const UpdateEncoding& encoding) {
  SHOAL_RETURN_IF_ERROR(encoding.Validate(num_clients));
  const uint64_t length = VectorLength(layout);
  if (sum.size() != length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the unmasked sum has ", sum.size(), " elements; the model needs ", length));
  }
  const uint64_t total_weight = sum.back();
  if (num_clients == 0 || total_weight < num_clients ||
      total_weight > num_clients * static_cast<uint64_t>(encoding.max_weight)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the unmasked total weight ", total_weight, " is impossible for ", num_clients,
        " clients of weight 1 to ", encoding.max_weight));
  }
  std::vector<uint64_t> codes(sum.begin(), sum.end() - 1);
  SHOAL_ASSIGN_OR_RETURN(std::vector<double> values,
                         DecodeSum(codes, num_clients, encoding.values));
  const double factor =
      static_cast<double>(encoding.max_weight) / static_cast<double>(total_weight);
  DecodedAggregate out;
  out.total_weight = static_cast<int64_t>(total_weight);
  size_t at = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    const at::Tensor& like = layout.tensor(i);
    at::Tensor t = at::empty(like.sizes(), at::TensorOptions().dtype(at::kFloat));
    float* p = t.data_ptr<float>();
    for (int64_t j = 0; j < t.numel(); ++j) p[j] = static_cast<float>(values[at++] * factor);
    out.mean_update.Add(layout.name(i), t.to(like.scalar_type()));
  }
  return out;
}

}  // namespace shoal::secagg
