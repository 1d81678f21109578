// What both halves of the SecAgg+ protocol must compute the same way: the
// session ID's shape, the associated data of a sealed share pair, the
// contexts of agreed keys, the masks, and how a masked vector is packed on
// the wire. Kept in one place so the client and the server cannot drift.
#ifndef SHOAL_SECAGG_WIRE_H_
#define SHOAL_SECAGG_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "secagg/crypto.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::secagg {

// Bounds that keep a hostile message from making either party allocate
// without limit.
inline constexpr uint64_t kMaxVectorLength = uint64_t{1} << 31;
inline constexpr uint32_t kMaxClients = 1u << 20;
inline constexpr size_t kMaxSessionIdSize = 64;

// ValidateSessionId accepts 1..64 characters of [A-Za-z0-9_-]; the ID is
// part of associated data and key contexts, so it must not be ambiguous.
absl::Status ValidateSessionId(absl::string_view session_id);

// NewSessionId returns 32 random hex characters.
absl::StatusOr<std::string> NewSessionId();

// MessageName names what a stage message carries ("key list", "masked
// input", ...), for errors and logs on either side.
const char* MessageName(v1::SecAggServerMessage::StageCase stage);
const char* MessageName(v1::SecAggClientMessage::StageCase stage);

// ValidateModulus accepts [2, 2^62] (what ExpandMask supports).
absl::Status ValidateModulus(uint64_t modulus);

// ShareAssociatedData binds a sealed share pair to its session, owner and
// holder, so it cannot be replayed into another session or redirected.
std::string ShareAssociatedData(absl::string_view session_id, uint32_t owner,
                                uint32_t holder);
// The contexts of the two keys every pair of neighbours agrees.
std::string ShareKeyContext(absl::string_view session_id);
std::string MaskKeyContext(absl::string_view session_id);

// SelfMask expands a client's self-mask seed; PairwiseMask expands the seed
// two neighbours agreed. Different domains, so the two never coincide.
absl::StatusOr<std::vector<uint64_t>> SelfMask(const Bytes& seed,
                                               absl::string_view session_id,
                                               size_t n, uint64_t modulus);
absl::StatusOr<std::vector<uint64_t>> PairwiseMask(const Bytes& seed,
                                                   absl::string_view session_id,
                                                   size_t n, uint64_t modulus);

// AddInto / SubtractFrom: a[i] = a[i] +/- b[i] mod modulus, for values
// below modulus <= 2^62 (sizes must match).
void AddInto(std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
             uint64_t modulus);
void SubtractFrom(std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                  uint64_t modulus);

// BytesPerElement is ceil(bits of (modulus - 1) / 8): 5 for 2^40.
size_t BytesPerElement(uint64_t modulus);
// Pack writes each value in BytesPerElement(modulus) little-endian bytes.
std::string Pack(const std::vector<uint64_t>& values, uint64_t modulus);
// Unpack reverses Pack: InvalidArgument when the size is not `n` elements or
// a value is not below the modulus.
absl::StatusOr<std::vector<uint64_t>> Unpack(absl::string_view packed, size_t n,
                                             uint64_t modulus);

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_WIRE_H_
