// Tensor decoding: ParseParameters and ParseUpdate (common/parameters.h) on
// arbitrary bytes, the form every model download and update upload takes,
// and ParseFitUpload (common/update_compression.h), which the server runs on
// every upload, compressed or not.
//
// Properties: nothing crashes; what parses serializes back to bytes that
// parse to equal tensors (names, dtypes, shapes, bytes), and serializing
// those again gives the same bytes; a compressed update that decodes gives
// the global model's names, dtypes and shapes, all finite, and leaves the
// global model as it was.
//
// Input: byte 0 picks the parser (0 mod 4: ParseParameters, 1:
// ParseUpdate, 2: ParseFitUpload against a fixed global model, 3:
// DecodeModelDelta against that model's bytes, which must give bytes of
// its size or fail); the rest is the serialized proto or the delta.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/parameters.h"
#include "common/model_delta.h"
#include "common/update_compression.h"
#include "fuzz/fuzz_support.h"

namespace shoal::fuzz {
namespace {

void CheckSame(const Parameters& a, const Parameters& b) {
  Check(a.size() == b.size(), "round trip changed the tensor count");
  Check(a.CheckCompatible(b).ok(), "round trip changed a name, dtype or shape");
  for (size_t i = 0; i < a.size(); ++i) {
    v1::TensorProto x, y;
    TensorToProto(a.name(i), a.tensor(i), &x);
    TensorToProto(b.name(i), b.tensor(i), &y);
    Check(x.data() == y.data(), "round trip changed a tensor's bytes");
  }
}

// Exercise what the server does next with a parsed update: norms, finiteness,
// scaling; none may crash on any dtype or shape the parser lets through.
void Use(const Parameters& p) {
  (void)p.NumElements();
  (void)p.ByteSize();
  (void)p.CheckFinite();
  (void)p.L2Norm();
  (void)p.Scaled(0.5);
  (void)p.Clone();
}

// The model compressed updates are decoded against.
const Parameters& Global() {
  static const Parameters* global = [] {
    auto* p = new Parameters();
    p->Add("fc.weight", at::linspace(-1, 1, 24, at::kFloat).reshape({4, 6}));
    p->Add("fc.bias", at::zeros({4}, at::kFloat));
    p->Add("steps", at::ones({1}, at::kLong));
    return p;
  }();
  return *global;
}

const std::string& GlobalBytes() {
  static const std::string* bytes = new std::string(SerializeParameters(Global()));
  return *bytes;
}

std::vector<std::string> Seeds() {
  Parameters p;
  p.Add("fc.weight", at::arange(6, at::kFloat).reshape({2, 3}));
  p.Add("fc.bias", at::zeros({3}, at::kDouble));
  Parameters q;
  q.Add("counts", at::arange(4, at::kLong));
  q.Add("mask", at::ones({2, 2}, at::kBool));
  q.Add("h", at::ones({3}, at::kHalf));
  q.Add("bf", at::ones({1, 1, 2}, at::kBFloat16));
  q.Add("i8", at::ones({2}, at::kChar));
  q.Add("u8", at::ones({2}, at::kByte));
  q.Add("i16", at::ones({2}, at::kShort));
  q.Add("i32", at::ones({2}, at::kInt));
  q.Add("scalar", at::ones({}, at::kFloat));
  q.Add("empty", at::zeros({0, 4}, at::kFloat));
  std::vector<std::string> seeds;
  seeds.push_back(std::string(1, '\0') + SerializeParameters(p));
  seeds.push_back(std::string(1, '\0') + SerializeParameters(q));
  seeds.push_back(std::string(1, '\1') + SerializeUpdate(p, Parameters()));
  seeds.push_back(std::string(1, '\1') + SerializeUpdate(p, q));
  seeds.push_back(std::string(1, '\1') + SerializeUpdate(Parameters(), Parameters()));
  Parameters trained = Global().Clone();  // an update of the model's shapes
  trained.mutable_tensor(0).fill_(0.1);
  trained.mutable_tensor(1).fill_(-0.2);
  for (Compression kind : {Compression::kQuantize8, Compression::kQuantize4, Compression::kTopK}) {
    std::map<std::string, at::Tensor> residuals;
    v1::UpdateProto update;
    if (CompressUpdate(trained, {kind, 8, 0.25}, 1, &residuals, &update).ok()) {
      seeds.push_back(std::string(1, '\2') + update.SerializeAsString());
    }
  }
  Parameters next = Global().Clone();
  next.mutable_tensor(0).add_(0.01);
  seeds.push_back(std::string(1, '\3') +
                  *EncodeModelDelta(GlobalBytes(), SerializeParameters(next)));
  return seeds;
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 4 == 3) {
    absl::StatusOr<std::string> rebuilt = DecodeModelDelta(GlobalBytes(), bytes);
    if (rebuilt.ok()) {
      Check(rebuilt->size() == GlobalBytes().size(), "a delta rebuilt bytes of another size");
    }
  } else if (data[0] % 4 == 2) {
    const at::Tensor before = Global().tensor(0).clone();
    Parameters decoded, aux;
    const bool ok = ParseFitUpload(bytes, Global(), &decoded, &aux).ok();
    Check(at::equal(Global().tensor(0), before), "decoding changed the global model");
    if (!ok) return 0;
    v1::UpdateProto update;
    Check(update.ParseFromString(bytes), "an accepted upload does not parse");
    if (update.compressed_size() > 0) {
      Check(decoded.CheckCompatible(Global()).ok(), "a decoded update does not fit the model");
      Check(decoded.CheckFinite().ok(), "a decoded update is not finite");
    }
    Use(decoded);
    Use(aux);
  } else if (data[0] % 4 == 0) {
    absl::StatusOr<Parameters> p = ParseParameters(bytes);
    if (!p.ok()) return 0;
    Use(*p);
    const std::string once = SerializeParameters(*p);
    absl::StatusOr<Parameters> again = ParseParameters(once);
    Check(again.ok(), "serialized parameters do not parse");
    CheckSame(*p, *again);
    Check(SerializeParameters(*again) == once, "serialization is not stable");
  } else {
    Parameters update, aux;
    if (!ParseUpdate(bytes, &update, &aux).ok()) return 0;
    Use(update);
    Use(aux);
    const std::string once = SerializeUpdate(update, aux);
    Parameters update2, aux2;
    Check(ParseUpdate(once, &update2, &aux2).ok(), "serialized update does not parse");
    CheckSame(update, update2);
    CheckSame(aux, aux2);
    Check(SerializeUpdate(update2, aux2) == once, "update serialization is not stable");
  }
  return 0;
}
