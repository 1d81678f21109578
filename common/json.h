// Reading JSON that comes from outside the process: config files, model
// manifests, checkpoints. nlohmann::json recurses once per nesting level
// when it copies, compares, dumps or destroys a value, so a 200 KB file of
// 100,000 nested brackets overflows the stack; and it keeps the last of two
// equal keys without a word. Every such input goes through ParseJson, which
// bounds size and depth before building anything and refuses duplicate keys.
// Error messages show untrusted values only through JsonForMessage (or
// QuoteForMessage, common/quote.h), never whole.
#ifndef SHOAL_COMMON_JSON_H_
#define SHOAL_COMMON_JSON_H_

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// JsonLimits bounds one JSON document. The defaults hold every file Shoal
// writes or documents with room to spare: a config nests 4 levels, a
// checkpoint's history 5.
struct JsonLimits {
  size_t max_bytes = size_t{1} << 20;  // 1 MiB
  int max_depth = 32;                  // arrays and objects, nested
};

// ParseJson parses `text`; `source` names it in errors (a file path, or
// "the config"). Errors: InvalidArgument when the text is larger than
// `limits.max_bytes`, nests deeper than `limits.max_depth`, is not JSON
// (with nlohmann's line and column), holds a number too large for a double,
// or repeats a key within one object (naming the key's dotted path).
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, path));
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, absl::string_view source,
                                         const JsonLimits& limits = {});

// JsonForMessage shows `value` in an error message, bounded: a number or
// boolean as written, a string quoted and cut after 40 characters, an
// object or array by its kind and size ("an object of 3 keys").
std::string JsonForMessage(const nlohmann::json& value);

}  // namespace shoal

#endif  // SHOAL_COMMON_JSON_H_
