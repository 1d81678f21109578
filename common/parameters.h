// Parameters: an ordered list of named tensors (model weights or an update),
// and its conversion to and from the wire format.
#ifndef SHOAL_COMMON_PARAMETERS_H_
#define SHOAL_COMMON_PARAMETERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// Parameters holds named tensors in a fixed order. The order is part of the
// contract: two Parameters are compatible when they have the same names,
// dtypes and shapes in the same order.
//
// Tensors are shared, not copied, on copy of a Parameters (like at::Tensor);
// use Clone() for a deep copy. Not thread-safe for concurrent mutation.
//
// Example:
//   Parameters p;
//   p.Add("fc.weight", at::zeros({10, 784}));
class Parameters {
 public:
  Parameters() = default;

  // Add appends a tensor. Names must be unique; a duplicate is a programming
  // error and aborts in debug builds.
  void Add(std::string name, at::Tensor tensor);

  size_t size() const { return tensors_.size(); }
  bool empty() const { return tensors_.empty(); }
  const std::string& name(size_t i) const { return names_[i]; }
  const at::Tensor& tensor(size_t i) const { return tensors_[i]; }
  at::Tensor& mutable_tensor(size_t i) { return tensors_[i]; }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<at::Tensor>& tensors() const { return tensors_; }

  // NumElements is the total element count over all tensors.
  int64_t NumElements() const;
  // ByteSize is the total size of the tensors' data in bytes.
  int64_t ByteSize() const;

  // Clone returns a deep, contiguous copy.
  Parameters Clone() const;

  // L2Norm is the Euclidean norm over every floating-point value (integer
  // tensors are counters, not weights), accumulated in float64.
  double L2Norm() const;
  // Scaled returns a copy with every floating-point tensor multiplied by
  // `factor`; integer tensors are shared as they are.
  Parameters Scaled(double factor) const;

  // CheckCompatible returns OK when `other` has the same names, dtypes and
  // shapes in the same order, and InvalidArgument naming the first
  // difference otherwise.
  absl::Status CheckCompatible(const Parameters& other) const;

  // CheckFinite returns InvalidArgument naming the first tensor holding a NaN
  // or an infinity; integer tensors are always finite.
  absl::Status CheckFinite() const;

 private:
  std::vector<std::string> names_;
  std::vector<at::Tensor> tensors_;
};

// Without returns `params` minus the tensors named in `names` (shared, not
// copied), in order.
template <typename Names>
Parameters Without(const Parameters& params, const Names& names) {
  Parameters out;
  for (size_t i = 0; i < params.size(); ++i) {
    bool named = false;
    for (const auto& n : names) named = named || n == params.name(i);
    if (!named) out.Add(params.name(i), params.tensor(i));
  }
  return out;
}

// NameMatches tells whether `name` matches one of the glob `patterns`
// (fnmatch, as fit.freeze, fit.train_only and fit.personal are written).
bool NameMatches(const std::vector<std::string>& patterns, const std::string& name);

// Conversions between Parameters and the wire format.
void ToProto(const Parameters& params, v1::ParametersProto* proto);
// ParametersFromProto validates every tensor (known dtype, non-negative
// shape, data size equal to numel * element size, unique names) and returns
// InvalidArgument naming the offending tensor otherwise.
absl::StatusOr<Parameters> ParametersFromProto(const v1::ParametersProto& proto);

// Single-tensor conversions, used by the above.
void TensorToProto(const std::string& name, const at::Tensor& tensor,
                   v1::TensorProto* proto);
absl::StatusOr<at::Tensor> TensorFromProto(const v1::TensorProto& proto);

// Serialize/Parse: Parameters as bytes (a serialized ParametersProto), the
// form that is chunked, checksummed and stored on disk.
std::string SerializeParameters(const Parameters& params);
absl::StatusOr<Parameters> ParseParameters(const std::string& bytes);

// SerializeUpdate/ParseUpdate: a fit result's tensors as bytes (a serialized
// UpdateProto): the update and the auxiliary tensors (empty for most
// strategies).
std::string SerializeUpdate(const Parameters& update, const Parameters& aux);
absl::Status ParseUpdate(const std::string& bytes, Parameters* update, Parameters* aux);

}  // namespace shoal

#endif  // SHOAL_COMMON_PARAMETERS_H_
