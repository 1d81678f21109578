// Quoting untrusted text in errors and logs. A value a peer or a file
// controls is shown bounded and with control characters escaped, so a 3 MB
// field cannot flood the log and a newline in it cannot forge log lines.
#ifndef SHOAL_COMMON_QUOTE_H_
#define SHOAL_COMMON_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace shoal {

// QuoteForMessage returns `s` in single quotes, cut after `max_chars`
// bytes with the number of bytes left out, bytes outside printable ASCII
// (and quotes and backslashes) written as \xNN.
//
// Example:
//   QuoteForMessage("abc")                  -> 'abc'
//   QuoteForMessage("a\nb")                -> 'a\x0ab'
//   QuoteForMessage(std::string(5000, 'x')) -> 'xx...x'... (4936 more bytes)
std::string QuoteForMessage(absl::string_view s, size_t max_chars = 64);

}  // namespace shoal

#endif  // SHOAL_COMMON_QUOTE_H_
