// SHA-256 over OpenSSL's EVP interface.
#ifndef SHOAL_COMMON_SHA256_H_
#define SHOAL_COMMON_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace shoal {

// Sha256 returns the 32-byte digest of `data`.
std::string Sha256(absl::string_view data);
// HexEncode returns lowercase hex.
std::string HexEncode(absl::string_view bytes);
// Sha256Hex is HexEncode(Sha256(data)).
std::string Sha256Hex(absl::string_view data);

// Sha256Hasher digests data that arrives in pieces. Not thread-safe.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  void Update(absl::string_view data);
  // Finish returns the 32-byte digest; the hasher is spent afterwards.
  std::string Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace shoal

#endif  // SHOAL_COMMON_SHA256_H_
