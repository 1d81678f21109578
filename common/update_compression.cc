#include "common/update_compression.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/quantize.h"
#include "common/random.h"
#include "common/sparsify.h"
#include "common/status.h"

namespace shoal {
namespace {

constexpr struct {
  Compression kind;
  const char* name;
} kNames[] = {{Compression::kNone, "none"},
              {Compression::kQuantize8, "q8"},
              {Compression::kQuantize4, "q4"},
              {Compression::kTopK, "topk"}};

}  // namespace

absl::StatusOr<Compression> ParseCompression(const std::string& name) {
  for (const auto& entry : kNames) {
    if (name == entry.name) return entry.kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compression '", name.substr(0, 40), "' (known: none, q8, q4, topk)"));
}

const char* CompressionName(Compression kind) {
  for (const auto& entry : kNames) {
    if (kind == entry.kind) return entry.name;
  }
  return "unknown";
}

absl::Status ValidateCompressionOptions(const CompressionOptions& options) {
  if (options.kind == Compression::kQuantize8 || options.kind == Compression::kQuantize4) {
    return ValidateQuantizeOptions({options.kind == Compression::kQuantize8 ? 8 : 4, options.block});
  }
  if (options.kind == Compression::kTopK && !(options.fraction > 0 && options.fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the top-k fraction is ", options.fraction, "; it must be in (0, 1]"));
  }
  return absl::OkStatus();
}

void CompressionToProto(const CompressionOptions& options, v1::UpdateCompression* proto) {
  proto->set_kind(CompressionName(options.kind));
  proto->set_block(static_cast<uint32_t>(options.block));
  proto->set_fraction(options.fraction);
}

absl::StatusOr<CompressionOptions> CompressionFromProto(const v1::UpdateCompression& proto) {
  CompressionOptions options;
  if (proto.kind().empty()) return options;
  SHOAL_ASSIGN_OR_RETURN(options.kind, ParseCompression(proto.kind()));
  options.block = proto.block();
  options.fraction = proto.fraction();
  SHOAL_RETURN_IF_ERROR(ValidateCompressionOptions(options));
  return options;
}

int64_t CompressedUploadBytes(const Parameters& like, const CompressionOptions& options) {
  int64_t bytes = 0;
  for (const at::Tensor& t : like.tensors()) {
    const int64_t n = t.numel();
    if (options.kind == Compression::kNone || t.scalar_type() != at::kFloat) {
      bytes += n * static_cast<int64_t>(t.element_size());
    } else if (options.kind == Compression::kTopK) {
      const auto k = static_cast<int64_t>(std::ceil(options.fraction * static_cast<double>(n)));
      bytes += SparseBytes(std::max<int64_t>(n > 0 ? 1 : 0, std::min(k, n)), n);
    } else {
      const int64_t bits = options.kind == Compression::kQuantize8 ? 8 : 4;
      const int64_t blocks = (n + options.block - 1) / options.block;
      bytes += (n * bits + 7) / 8 + 8 * blocks;  // codes, and a float32 lo and scale per block
    }
  }
  return bytes;
}

absl::Status CompressUpdate(const Parameters& update, const CompressionOptions& options,
                            uint64_t seed, std::map<std::string, at::Tensor>* residuals,
                            v1::UpdateProto* out) {
  SHOAL_RETURN_IF_ERROR(ValidateCompressionOptions(options));
  if (options.kind == Compression::kTopK && residuals == nullptr) {
    return absl::InvalidArgumentError("top-k needs a residual map");
  }
  for (size_t i = 0; i < update.size(); ++i) {
    const std::string& name = update.name(i);
    const at::Tensor& w = update.tensor(i);
    if (options.kind == Compression::kNone || w.scalar_type() != at::kFloat) {
      TensorToProto(name, w, out->add_tensors());
      continue;
    }
    const at::Tensor delta = w.contiguous();
    v1::CompressedTensorProto* c = out->add_compressed();
    c->set_name(name);
    for (int64_t d : w.sizes()) c->add_shape(d);
    if (options.kind == Compression::kTopK) {
      absl::StatusOr<SparseTensor> s = TopK(delta, options.fraction, &(*residuals)[name]);
      if (!s.ok()) return Annotate(s.status(), absl::StrCat("tensor '", name, "'"));
      v1::SparseTensorProto* sp = c->mutable_sparse();
      int64_t previous = 0;
      std::string* halves = sp->mutable_values_f16();
      halves->reserve(2 * s->values.size());
      for (size_t j = 0; j < s->indices.size(); ++j) {
        sp->add_gaps(static_cast<uint32_t>(s->indices[j] - previous));
        previous = s->indices[j];
        const uint16_t bits = c10::Half(s->values[j]).x;
        halves->push_back(static_cast<char>(bits & 0xff));
        halves->push_back(static_cast<char>(bits >> 8));
      }
    } else {
      const QuantizeOptions q{options.kind == Compression::kQuantize8 ? 8 : 4, options.block};
      absl::StatusOr<QuantizedTensor> qt = Quantize(delta, q, MixSeed(seed, i));
      if (!qt.ok()) return Annotate(qt.status(), absl::StrCat("tensor '", name, "'"));
      v1::QuantizedTensorProto* qp = c->mutable_quantized();
      qp->set_bits(static_cast<uint32_t>(qt->bits));
      qp->set_block(static_cast<uint32_t>(qt->block));
      qp->mutable_lo()->Add(qt->lo.begin(), qt->lo.end());
      qp->mutable_scale()->Add(qt->scale.begin(), qt->scale.end());
      qp->set_codes(std::move(qt->codes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Parameters> DecompressUpdate(const Parameters& like,
                                            const v1::UpdateProto& update) {
  const Parameters& global = like;
  std::map<std::string, const v1::CompressedTensorProto*> compressed;
  std::map<std::string, const v1::TensorProto*> full;
  for (const v1::CompressedTensorProto& c : update.compressed()) {
    if (!compressed.emplace(c.name(), &c).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", c.name(), "' is sent twice"));
    }
  }
  for (const v1::TensorProto& t : update.tensors()) {
    if (compressed.count(t.name()) > 0 || !full.emplace(t.name(), &t).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name(), "' is sent twice"));
    }
  }
  if (compressed.size() + full.size() != global.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the update has ",
                                                   compressed.size() + full.size(),
                                                   " tensors; the model has ", global.size()));
  }
  Parameters out;
  for (size_t i = 0; i < global.size(); ++i) {
    const std::string& name = global.name(i);
    const at::Tensor& g = global.tensor(i);
    const std::string what = absl::StrCat("tensor '", name, "'");
    if (auto it = full.find(name); it != full.end()) {
      SHOAL_ASSIGN_OR_RETURN(at::Tensor t, Annotate(TensorFromProto(*it->second), what));
      if (t.scalar_type() != g.scalar_type() || !t.sizes().equals(g.sizes())) {
        return absl::InvalidArgumentError(absl::StrCat(what, " has another dtype or shape"));
      }
      out.Add(name, std::move(t));
      continue;
    }
    auto it = compressed.find(name);
    if (it == compressed.end()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " is missing from the update"));
    }
    const v1::CompressedTensorProto& c = *it->second;
    const std::vector<int64_t> shape(c.shape().begin(), c.shape().end());
    if (g.scalar_type() != at::kFloat || shape != g.sizes().vec()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is compressed with another shape, or is not float32"));
    }
    absl::StatusOr<at::Tensor> delta;
    if (c.has_quantized()) {
      const v1::QuantizedTensorProto& qp = c.quantized();
      QuantizedTensor q;
      q.bits = static_cast<int>(qp.bits());
      q.block = qp.block();
      q.shape = shape;
      q.lo.assign(qp.lo().begin(), qp.lo().end());
      q.scale.assign(qp.scale().begin(), qp.scale().end());
      q.codes = qp.codes();
      delta = Dequantize(q, g.numel());
    } else if (c.has_sparse()) {
      SparseTensor s;
      s.shape = shape;
      const v1::SparseTensorProto& sp = c.sparse();
      if (sp.values_f16().size() != 2 * static_cast<size_t>(sp.gaps_size())) {
        delta = absl::InvalidArgumentError(absl::StrCat(sp.gaps_size(), " indices but ",
                                                        sp.values_f16().size(),
                                                        " bytes of half-float values"));
      } else {
        // Summed in int64: uint32 gaps cannot overflow it; Densify refuses
        // what lands outside the tensor or does not increase (a gap of 0).
        int64_t index = 0;
        for (int j = 0; j < sp.gaps_size(); ++j) {
          index += sp.gaps(j);
          s.indices.push_back(index);
          const auto lo = static_cast<uint8_t>(sp.values_f16()[2 * j]);
          const auto hi = static_cast<uint8_t>(sp.values_f16()[2 * j + 1]);
          s.values.push_back(static_cast<float>(
              c10::Half(static_cast<uint16_t>(lo | (hi << 8)), c10::Half::from_bits())));
        }
        delta = Densify(s, g.numel());
      }
    } else {
      delta = absl::InvalidArgumentError("no codec is set");
    }
    if (!delta.ok()) return Annotate(delta.status(), what);
    if (!at::isfinite(*delta).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " is not finite once decoded"));
    }
    out.Add(name, *std::move(delta));
  }
  return out;
}

absl::Status ParseFitUpload(const std::string& bytes, const Parameters& like, Parameters* update,
                            Parameters* aux) {
  v1::UpdateProto proto;
  if (!proto.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot parse the fit result: ", bytes.size(), " bytes are not a valid UpdateProto"));
  }
  absl::StatusOr<Parameters> u;
  if (proto.compressed_size() > 0) {
    u = Annotate(DecompressUpdate(like, proto), "compressed update");
  } else {
    v1::ParametersProto full;  // moved, not copied: an update may be large
    full.mutable_tensors()->Swap(proto.mutable_tensors());
    u = ParametersFromProto(full);
  }
  if (!u.ok()) return u.status();
  v1::ParametersProto aux_proto;
  aux_proto.mutable_tensors()->Swap(proto.mutable_aux());
  absl::StatusOr<Parameters> a = ParametersFromProto(aux_proto);
  if (!a.ok()) return Annotate(a.status(), "auxiliary tensors");
  *update = *std::move(u);
  *aux = *std::move(a);
  return absl::OkStatus();
}

}  // namespace shoal
