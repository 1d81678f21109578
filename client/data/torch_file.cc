#include "client/data/torch_file.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/files.h"
#include "common/quote.h"
#include "common/status.h"

namespace shoal::client {
namespace {

// How much of a LibTorch error message goes into ours.
constexpr size_t kMaxLibTorchMessage = 200;
// How many keys an error message lists.
constexpr size_t kMaxKeysInMessage = 10;

// FirstLine returns a LibTorch message's first line, bounded and quoted:
// the rest is a C++ backtrace or an echo of the file's bytes.
std::string FirstLine(const c10::Error& e) {
  absl::string_view what = e.what_without_backtrace();
  return QuoteForMessage(what.substr(0, what.find('\n')), kMaxLibTorchMessage);
}

std::string Dims(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

// CheckTensor checks what x and y have in common: a dense CPU tensor, no
// more elements than the file could hold, and finite values.
absl::Status CheckTensor(const std::string& path, const char* key, const at::Tensor& t,
                         uint64_t file_bytes) {
  if (t.layout() != at::kStrided || t.is_quantized() || !t.device().is_cpu()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", key, "' must be a dense CPU tensor"));
  }
  const at::ScalarType type = t.scalar_type();
  if (type == at::kBool || !(at::isFloatingType(type) || at::isIntegralType(type, false))) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' has dtype ",
                                                   c10::toString(type),
                                                   "; a floating or integer dtype is needed"));
  }
  if (t.dim() < 1 || t.size(0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", key, "' is ", Dims(t), "; it needs N > 0 examples"));
  }
  // A stride-0 view (x.expand) pickles a tiny storage but would allocate
  // its full size below; real data cannot hold more than the file.
  if (static_cast<uint64_t>(t.numel()) > file_bytes / t.element_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", key, "' is ", Dims(t),
                     ", more elements than the file holds (an expanded view? save "
                     "x.contiguous())"));
  }
  if (at::isFloatingType(type) && !at::isfinite(t).all().item<bool>()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", key, "' holds NaN or infinite values"));
  }
  return absl::OkStatus();
}

// Converted returns a contiguous copy of `t` as `type`, owning its memory.
at::Tensor Converted(const at::Tensor& t, at::ScalarType type) {
  return t.to(at::TensorOptions().dtype(type), /*non_blocking=*/false,
              /*copy=*/true, at::MemoryFormat::Contiguous);
}

// ToDataset checks the unpickled value and converts it. Calls LibTorch; the
// caller catches c10::Error.
absl::StatusOr<Dataset> ToDataset(const std::string& path, const c10::IValue& value,
                                  uint64_t file_bytes) {
  if (!value.isGenericDict()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": holds a ", value.tagKind(), ", not a dict; save {\"x\": inputs, \"y\": targets}"));
  }
  const c10::Dict<c10::IValue, c10::IValue> dict = value.toGenericDict();
  at::Tensor x, y;
  std::vector<std::string> extra;
  bool has_x = false, has_y = false;
  for (const auto& entry : dict) {
    const c10::IValue& key = entry.key();
    const std::string name =
        key.isString() ? key.toStringRef() : absl::StrCat("<", key.tagKind(), ">");
    if (name != "x" && name != "y") {
      if (extra.size() < kMaxKeysInMessage) extra.push_back(QuoteForMessage(name));
      continue;
    }
    if (!entry.value().isTensor()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": '", name, "' is a ", entry.value().tagKind(), ", not a tensor"));
    }
    (name == "x" ? has_x : has_y) = true;
    (name == "x" ? x : y) = entry.value().toTensor();
  }
  if (!has_x || !has_y || !extra.empty()) {
    std::vector<std::string> problems;
    if (!has_x) problems.push_back("no key 'x'");
    if (!has_y) problems.push_back("no key 'y'");
    if (!extra.empty()) {
      problems.push_back(absl::StrCat("unexpected key(s) ", absl::StrJoin(extra, ", "),
                                      dict.size() - has_x - has_y > extra.size() ? ", ..." : ""));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", absl::StrJoin(problems, "; "),
                     "; the dict must hold exactly \"x\" (inputs) and \"y\" (targets)"));
  }
  SHOAL_RETURN_IF_ERROR(CheckTensor(path, "x", x, file_bytes));
  SHOAL_RETURN_IF_ERROR(CheckTensor(path, "y", y, file_bytes));
  if (x.dim() < 2 || x.dim() > kMaxTorchFileDims) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": 'x' is ", Dims(x), "; it must be [N, ...] with 2 to ", kMaxTorchFileDims,
        " dimensions (one feature per example: save "
        "x.unsqueeze(1))"));
  }
  if (y.dim() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": 'y' is ", Dims(y), "; it must be [N] or [N, K]"));
  }
  if (x.size(0) != y.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": 'x' holds ", x.size(0),
                                                   " examples but 'y' holds ", y.size(0), " (x ",
                                                   Dims(x), ", y ", Dims(y), ")"));
  }
  Dataset data;
  data.inputs = Converted(x, at::kFloat);
  if (at::isFloatingType(y.scalar_type())) {
    data.targets = Converted(y, at::kFloat);
    return data;
  }
  if (y.dim() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": 'y' is ", Dims(y), " of ", c10::toString(y.scalar_type()),
                     "; class indices are [N] (for [N, K] values save a float tensor)"));
  }
  data.targets = Converted(y, at::kLong);
  const int64_t min = data.targets.min().item<int64_t>();
  if (min < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": 'y' holds class label ", min, "; class labels are >= 0"));
  }
  return data;
}

}  // namespace

absl::StatusOr<Dataset> ReadTorchFile(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxTorchFileBytes));
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "PK\x03\x04", 4) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": not a torch.save file (no zip header; files saved with "
                     "_use_new_zipfile_serialization=False are not read)"));
  }
  const uint64_t file_bytes = bytes.size();
  try {
    c10::IValue value;
    {
      const std::vector<char> data(bytes.begin(), bytes.end());
      std::string().swap(bytes);  // one copy in memory at a time after this
      value = torch::jit::pickle_load(data);
    }
    return ToDataset(path, value, file_bytes);
  } catch (const c10::Error& e) {
    // LibTorch 1.13's unpickler lacks SETITEM, which pickle writes for a
    // dict of exactly one key (two or more take SETITEMS).
    const bool setitem =
        absl::StrContains(e.what_without_backtrace(), "Unknown opcode for unpickling at 0x73");
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a readable torch.save file: ", FirstLine(e),
        setitem ? " (a dict with one key? it must hold exactly \"x\" and \"y\")" : ""));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": out of memory reading its tensors"));
  }
}

}  // namespace shoal::client
