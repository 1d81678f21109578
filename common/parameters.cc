#include "common/parameters.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include <ATen/ATen.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Shoal's wire format is little-endian; big-endian hosts are not supported"
#endif

namespace shoal {
namespace {

// The largest tensor the wire format accepts: 2^34 elements (64 GiB of
// float32), far above any model here and well below int64 overflow.
constexpr int64_t kMaxElements = int64_t{1} << 34;

struct DTypeEntry {
  v1::DType wire;
  at::ScalarType scalar;
};

constexpr DTypeEntry kDTypes[] = {
    {v1::DTYPE_FLOAT32, at::kFloat},   {v1::DTYPE_FLOAT64, at::kDouble},
    {v1::DTYPE_FLOAT16, at::kHalf},    {v1::DTYPE_BFLOAT16, at::kBFloat16},
    {v1::DTYPE_INT8, at::kChar},       {v1::DTYPE_UINT8, at::kByte},
    {v1::DTYPE_INT16, at::kShort},     {v1::DTYPE_INT32, at::kInt},
    {v1::DTYPE_INT64, at::kLong},      {v1::DTYPE_BOOL, at::kBool},
};

v1::DType WireDType(at::ScalarType type) {
  for (const auto& e : kDTypes) {
    if (e.scalar == type) return e.wire;
  }
  return v1::DTYPE_UNSPECIFIED;
}

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

void Parameters::Add(std::string name, at::Tensor tensor) {
  names_.push_back(std::move(name));
  tensors_.push_back(std::move(tensor));
}

int64_t Parameters::NumElements() const {
  int64_t n = 0;
  for (const auto& t : tensors_) n += t.numel();
  return n;
}

int64_t Parameters::ByteSize() const {
  int64_t n = 0;
  for (const auto& t : tensors_) n += t.numel() * t.element_size();
  return n;
}

Parameters Parameters::Clone() const {
  Parameters copy;
  for (size_t i = 0; i < size(); ++i) {
    copy.Add(names_[i], tensors_[i].detach().clone().contiguous());
  }
  return copy;
}

double Parameters::L2Norm() const {
  double sum = 0;
  for (const at::Tensor& t : tensors_) {
    if (at::isFloatingType(t.scalar_type()) && t.numel() > 0) {
      sum += t.to(at::kDouble).pow(2).sum().item<double>();
    }
  }
  return std::sqrt(sum);
}

Parameters Parameters::Scaled(double factor) const {
  Parameters out;
  for (size_t i = 0; i < size(); ++i) {
    const at::Tensor& t = tensors_[i];
    out.Add(names_[i], at::isFloatingType(t.scalar_type()) ? t * factor : t);
  }
  return out;
}

absl::Status Parameters::CheckCompatible(const Parameters& other) const {
  if (other.size() != size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", size(), " tensors, got ", other.size()));
  }
  for (size_t i = 0; i < size(); ++i) {
    const at::Tensor& want = tensors_[i];
    const at::Tensor& got = other.tensor(i);
    if (other.name(i) != names_[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", i, " is named '", other.name(i), "', expected '",
          names_[i], "'"));
    }
    if (got.scalar_type() != want.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", names_[i], "' has dtype ",
          c10::toString(got.scalar_type()), ", expected ",
          c10::toString(want.scalar_type())));
    }
    if (!got.sizes().equals(want.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", names_[i], "' has shape ", ShapeString(got.sizes()),
          ", expected ", ShapeString(want.sizes())));
    }
  }
  return absl::OkStatus();
}

absl::Status Parameters::CheckFinite() const {
  for (size_t i = 0; i < size(); ++i) {
    const at::Tensor& t = tensors_[i];
    if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0) continue;
    if (!at::isfinite(t).all().item<bool>()) {
      const int64_t bad = t.numel() - at::isfinite(t).sum().item<int64_t>();
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", names_[i], "' holds ", bad,
          " non-finite value(s) (NaN or Inf)"));
    }
  }
  return absl::OkStatus();
}

void TensorToProto(const std::string& name, const at::Tensor& tensor,
                   v1::TensorProto* proto) {
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  proto->set_name(name);
  proto->set_dtype(WireDType(t.scalar_type()));
  proto->clear_shape();
  for (int64_t d : t.sizes()) proto->add_shape(d);
  proto->set_data(static_cast<const char*>(t.data_ptr()),
                  static_cast<size_t>(t.numel() * t.element_size()));
}

absl::StatusOr<at::Tensor> TensorFromProto(const v1::TensorProto& proto) {
  const std::string& name = proto.name();
  at::ScalarType type = at::ScalarType::Undefined;
  for (const auto& e : kDTypes) {
    if (e.wire == proto.dtype()) type = e.scalar;
  }
  if (type == at::ScalarType::Undefined) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' has unknown dtype ", proto.dtype()));
  }
  std::vector<int64_t> shape(proto.shape().begin(), proto.shape().end());
  // The limit holds for the shape with zeros counted as ones, not just for
  // the element count: LibTorch computes strides as products of the later
  // dimensions, and reads a size at or above 2^62 as a symbolic one, so an
  // empty tensor of shape [0, 2^62] would crash it on the first clone.
  int64_t numel = 1;
  int64_t extent = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' has negative dimension in shape ",
          ShapeString(shape)));
    }
    const int64_t span = std::max<int64_t>(d, 1);
    if (extent > kMaxElements / span) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' shape ", ShapeString(shape),
          " exceeds the limit of ", kMaxElements, " elements"));
    }
    extent *= span;
    numel *= d;
  }
  const int64_t want_bytes = numel * static_cast<int64_t>(c10::elementSize(type));
  if (static_cast<int64_t>(proto.data().size()) != want_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' of shape ", ShapeString(shape), " and dtype ",
        c10::toString(type), " needs ", want_bytes, " bytes, got ",
        proto.data().size()));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  if (want_bytes > 0) std::memcpy(t.data_ptr(), proto.data().data(), want_bytes);
  if (type == at::kBool) {
    // Any byte other than 0/1 is not a valid bool; normalize rather than
    // hand LibTorch undefined behaviour.
    t = t.view(at::kByte).ne(0);
  }
  return t;
}

namespace {

void TensorsToProto(const Parameters& params,
                    google::protobuf::RepeatedPtrField<v1::TensorProto>* out) {
  out->Clear();
  for (size_t i = 0; i < params.size(); ++i) {
    TensorToProto(params.name(i), params.tensor(i), out->Add());
  }
}

absl::StatusOr<Parameters> TensorsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TensorProto>& tensors) {
  Parameters params;
  absl::flat_hash_set<std::string> seen;
  for (const v1::TensorProto& t : tensors) {
    if (!seen.insert(t.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor name '", t.name(), "' appears twice"));
    }
    absl::StatusOr<at::Tensor> tensor = TensorFromProto(t);
    if (!tensor.ok()) return tensor.status();
    params.Add(t.name(), *std::move(tensor));
  }
  return params;
}

}  // namespace

void ToProto(const Parameters& params, v1::ParametersProto* proto) {
  TensorsToProto(params, proto->mutable_tensors());
}

absl::StatusOr<Parameters> ParametersFromProto(const v1::ParametersProto& proto) {
  return TensorsFromProto(proto.tensors());
}

std::string SerializeParameters(const Parameters& params) {
  v1::ParametersProto proto;
  ToProto(params, &proto);
  return proto.SerializeAsString();
}

absl::StatusOr<Parameters> ParseParameters(const std::string& bytes) {
  v1::ParametersProto proto;
  if (!proto.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot parse parameters: ", bytes.size(),
                     " bytes are not a valid ParametersProto"));
  }
  return ParametersFromProto(proto);
}

bool NameMatches(const std::vector<std::string>& patterns, const std::string& name) {
  for (const std::string& p : patterns) {
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string SerializeUpdate(const Parameters& update, const Parameters& aux) {
  v1::UpdateProto proto;
  TensorsToProto(update, proto.mutable_tensors());
  TensorsToProto(aux, proto.mutable_aux());
  return proto.SerializeAsString();
}

absl::Status ParseUpdate(const std::string& bytes, Parameters* update, Parameters* aux) {
  v1::UpdateProto proto;
  if (!proto.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot parse the fit result: ", bytes.size(), " bytes are not a valid UpdateProto"));
  }
  absl::StatusOr<Parameters> u = TensorsFromProto(proto.tensors());
  if (!u.ok()) return u.status();
  absl::StatusOr<Parameters> a = TensorsFromProto(proto.aux());
  if (!a.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("auxiliary tensors: ", a.status().message()));
  }
  *update = *std::move(u);
  *aux = *std::move(a);
  return absl::OkStatus();
}

}  // namespace shoal
