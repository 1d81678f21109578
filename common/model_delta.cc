#include "common/model_delta.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

constexpr size_t kWord = 4;  // float32: one plane per byte of the word
// Fast and close to level 6 on weights (docs/benchmarks.md).
constexpr int kLevel = 1;

// Planes[k] holds byte k of every whole word, in order; the tail (under one
// word) follows as it is. Unshuffle undoes it.
std::string Shuffle(const std::string& x) {
  const size_t words = x.size() / kWord;
  std::string out(x.size(), '\0');
  for (size_t k = 0; k < kWord; ++k) {
    for (size_t i = 0; i < words; ++i) out[k * words + i] = x[i * kWord + k];
  }
  for (size_t i = words * kWord; i < x.size(); ++i) out[i] = x[i];
  return out;
}

void UnshuffleXor(const std::string& planes, absl::string_view base, std::string* out) {
  const size_t words = planes.size() / kWord;
  out->assign(base.data(), base.size());
  for (size_t k = 0; k < kWord; ++k) {
    for (size_t i = 0; i < words; ++i) (*out)[i * kWord + k] ^= planes[k * words + i];
  }
  for (size_t i = words * kWord; i < planes.size(); ++i) (*out)[i] ^= planes[i];
}

}  // namespace

absl::StatusOr<std::string> EncodeModelDelta(absl::string_view base, absl::string_view target) {
  if (base.size() != target.size()) {
    return absl::InvalidArgumentError(absl::StrCat("a delta needs models of one size; got ",
                                                   base.size(), " and ", target.size(), " bytes"));
  }
  if (target.size() > std::numeric_limits<uLong>::max() / 2) {
    return absl::InvalidArgumentError("model too large for a delta");
  }
  std::string x(target.data(), target.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] ^= base[i];
  const std::string planes = Shuffle(x);
  uLongf size = compressBound(static_cast<uLong>(planes.size()));
  std::string out(size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                           reinterpret_cast<const Bytef*>(planes.data()),
                           static_cast<uLong>(planes.size()), kLevel);
  if (rc != Z_OK) return absl::InternalError(absl::StrCat("zlib compress2 failed: ", rc));
  out.resize(size);
  return out;
}

absl::StatusOr<std::string> DecodeModelDelta(absl::string_view base, absl::string_view delta) {
  if (delta.size() > std::numeric_limits<uInt>::max()) {
    return absl::InvalidArgumentError("the delta is too large");
  }
  // Inflated into a buffer of exactly the base's size, plus one byte to
  // tell "longer" from "exact": nothing larger is ever allocated.
  std::string planes(base.size() + 1, '\0');
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return absl::InternalError("zlib inflateInit failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(delta.data()));
  z.avail_in = static_cast<uInt>(delta.size());
  size_t produced = 0;
  int rc = Z_OK;
  while (rc == Z_OK && produced < planes.size()) {
    const size_t room = std::min<size_t>(planes.size() - produced, std::numeric_limits<uInt>::max());
    z.next_out = reinterpret_cast<Bytef*>(planes.data() + produced);
    z.avail_out = static_cast<uInt>(room);
    rc = inflate(&z, Z_NO_FLUSH);
    produced += room - z.avail_out;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // input ran out early
  }
  const bool ended = rc == Z_STREAM_END && z.avail_in == 0;
  inflateEnd(&z);
  if (!ended || produced != base.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model delta is not deflate data of the held model's ", base.size(), " bytes",
        rc == Z_STREAM_END ? absl::StrCat(" (it holds ", produced, produced > base.size() ? "+" : "",
                                          " bytes)")
                           : ""));
  }
  planes.resize(base.size());
  std::string out;
  UnshuffleXor(planes, base, &out);
  return out;
}

}  // namespace shoal
