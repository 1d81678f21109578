#include "common/quote.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal {

std::string QuoteForMessage(absl::string_view s, size_t max_chars) {
  const absl::string_view shown = s.substr(0, max_chars);
  std::string out = "'";
  for (const char c : shown) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\' && c != '\'') {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    }
  }
  out.push_back('\'');
  if (s.size() > shown.size()) {
    absl::StrAppend(&out, "... (", s.size() - shown.size(), " more bytes)");
  }
  return out;
}

}  // namespace shoal
