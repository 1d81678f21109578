#include "common/openssl_util.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace shoal::openssl {

BioPtr MemoryBio(absl::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string DrainErrors() {
  std::string text;
  char buf[256];
  while (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

absl::Status Error(absl::StatusCode code, absl::string_view what) {
  const std::string errors = DrainErrors();
  if (errors.empty()) return absl::Status(code, what);
  return absl::Status(code, absl::StrCat(what, ": ", errors));
}

absl::Status InternalError(absl::string_view what) {
  return Error(absl::StatusCode::kInternal, what);
}

}  // namespace shoal::openssl
