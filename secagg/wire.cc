#include "secagg/wire.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace shoal::secagg {

absl::Status ValidateSessionId(absl::string_view session_id) {
  if (session_id.empty() || session_id.size() > kMaxSessionIdSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session ID must have 1 to ", kMaxSessionIdSize, " characters, got ",
        session_id.size()));
  }
  for (char c : session_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) {
      return absl::InvalidArgumentError(
          "session ID may hold only letters, digits, '-' and '_'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewSessionId() {
  SHOAL_ASSIGN_OR_RETURN(Bytes random, RandomBytes(16));
  return absl::BytesToHexString(random);
}

const char* MessageName(v1::SecAggServerMessage::StageCase c) {
  switch (c) {
    case v1::SecAggServerMessage::kSetup: return "setup";
    case v1::SecAggServerMessage::kKeyList: return "key list";
    case v1::SecAggServerMessage::kShares: return "shares";
    case v1::SecAggServerMessage::kUnmask: return "unmasking request";
    case v1::SecAggServerMessage::STAGE_NOT_SET: return "nothing";
  }
  return "unknown";
}

const char* MessageName(v1::SecAggClientMessage::StageCase c) {
  switch (c) {
    case v1::SecAggClientMessage::kKeys: return "public keys";
    case v1::SecAggClientMessage::kShares: return "share pairs";
    case v1::SecAggClientMessage::kMaskedInput: return "masked input";
    case v1::SecAggClientMessage::kUnmask: return "unmasking shares";
    case v1::SecAggClientMessage::STAGE_NOT_SET: return "nothing";
  }
  return "unknown";
}

absl::Status ValidateModulus(uint64_t modulus) {
  if (modulus < 2 || modulus > kMaxMaskModulus) {
    return absl::InvalidArgumentError(absl::StrCat(
        "modulus must be in [2, 2^62], got ", modulus));
  }
  return absl::OkStatus();
}

std::string ShareAssociatedData(absl::string_view session_id, uint32_t owner,
                                uint32_t holder) {
  return absl::StrCat("shoal-secagg-share|", session_id, "|", owner, "|",
                      holder);
}

std::string ShareKeyContext(absl::string_view session_id) {
  return absl::StrCat("shoal-secagg-share-key|", session_id);
}

std::string MaskKeyContext(absl::string_view session_id) {
  return absl::StrCat("shoal-secagg-mask-key|", session_id);
}

absl::StatusOr<std::vector<uint64_t>> SelfMask(const Bytes& seed,
                                               absl::string_view session_id,
                                               size_t n, uint64_t modulus) {
  return ExpandMask(seed, absl::StrCat("self|", session_id), n, modulus);
}

absl::StatusOr<std::vector<uint64_t>> PairwiseMask(const Bytes& seed,
                                                   absl::string_view session_id,
                                                   size_t n, uint64_t modulus) {
  return ExpandMask(seed, absl::StrCat("pairwise|", session_id), n, modulus);
}

void AddInto(std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
             uint64_t modulus) {
  for (size_t i = 0; i < a.size(); ++i) {
    const uint64_t s = a[i] + b[i];  // < 2^63, no overflow
    a[i] = s >= modulus ? s - modulus : s;
  }
}

void SubtractFrom(std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                  uint64_t modulus) {
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = a[i] >= b[i] ? a[i] - b[i] : a[i] + (modulus - b[i]);
  }
}

size_t BytesPerElement(uint64_t modulus) {
  uint64_t top = modulus - 1;
  size_t bytes = 0;
  while (top != 0) {
    ++bytes;
    top >>= 8;
  }
  return bytes == 0 ? 1 : bytes;
}

std::string Pack(const std::vector<uint64_t>& values, uint64_t modulus) {
  const size_t width = BytesPerElement(modulus);
  std::string out(values.size() * width, '\0');
  char* p = out.data();
  for (uint64_t v : values) {
    for (size_t b = 0; b < width; ++b) *p++ = static_cast<char>(v >> (8 * b));
  }
  return out;
}

absl::StatusOr<std::vector<uint64_t>> Unpack(absl::string_view packed, size_t n,
                                             uint64_t modulus) {
  const size_t width = BytesPerElement(modulus);
  if (packed.size() != n * width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "masked input has ", packed.size(), " bytes; ", n, " elements of ",
        width, " bytes need ", n * width));
  }
  std::vector<uint64_t> values(n);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(packed.data());
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = 0;
    for (size_t b = 0; b < width; ++b) v |= uint64_t{*p++} << (8 * b);
    if (v >= modulus) {
      return absl::InvalidArgumentError(absl::StrCat(
          "masked input element ", i, " is ", v, ", not below the modulus ",
          modulus));
    }
    values[i] = v;
  }
  return values;
}

}  // namespace shoal::secagg
