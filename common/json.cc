#include "common/json.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"

namespace shoal {
namespace {

using nlohmann::json;

// DepthError finds the first place `text` nests deeper than `max_depth`
// without parsing it: brackets inside strings do not count. Returns an
// empty string when the depth is within the bound.
std::string DepthError(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  size_t line = 1, column = 0;
  for (const char c : text) {
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
    }
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return absl::StrCat("nests deeper than ", max_depth, " levels (line ", line,
                            ", column ", column, ")");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return "";
}

// DuplicateKeyFinder is a parser callback that remembers the first key
// repeated within one object, by its dotted path ("fit.learning_rate").
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames_.push_back(Frame{true, {}, ""});
        break;
      case json::parse_event_t::array_start:
        frames_.push_back(Frame{false, {}, "[]"});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& f = frames_.back();
          f.current = parsed.get<std::string>();
          if (!f.keys.insert(f.current).second && duplicate_.empty()) duplicate_ = Path();
        }
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  }

  // The first repeated key's path, empty when none was.
  const std::string& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;
    std::string current;  // the key being read, or "[]" in an array
  };

  std::string Path() const {
    std::string path;
    for (const Frame& f : frames_) {
      if (!f.object) {
        path += "[]";
      } else {
        absl::StrAppend(&path, path.empty() ? "" : ".", f.current);
      }
    }
    return path;
  }

  std::vector<Frame> frames_;
  std::string duplicate_;
};

}  // namespace

absl::StatusOr<json> ParseJson(absl::string_view text, absl::string_view source,
                               const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", text.size(),
                                                   " bytes is larger than the limit of ",
                                                   limits.max_bytes, " bytes for this file"));
  }
  if (std::string depth = DepthError(text, limits.max_depth); !depth.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", depth));
  }
  // The callback is copied into the parser; it reports through a pointer.
  auto finder = std::make_shared<DuplicateKeyFinder>();
  json j;
  try {
    j = json::parse(text.begin(), text.end(),
                    [finder](int depth, json::parse_event_t event, json& parsed) {
                      return (*finder)(depth, event, parsed);
                    });
  } catch (const json::exception& e) {
    // Not only parse_error: a number too large for a double (1e400) is an
    // out_of_range thrown by the parser itself. nlohmann quotes the token
    // it stopped at, which may be long: the message is cut.
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not valid JSON: ", absl::string_view(e.what()).substr(0, 240)));
  }
  if (!finder->duplicate().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": key ", QuoteForMessage(finder->duplicate(), 120),
                     " appears twice in one object; keep one"));
  }
  return j;
}

std::string JsonForMessage(const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      return absl::StrCat("an object of ", value.size(), value.size() == 1 ? " key" : " keys");
    case json::value_t::array:
      return absl::StrCat("an array of ", value.size(),
                          value.size() == 1 ? " element" : " elements");
    case json::value_t::string:
      return QuoteForMessage(value.get_ref<const std::string&>(), 40);
    default:
      // null, booleans and numbers are short.
      return value.dump();
  }
}

}  // namespace shoal
