// JsonFields: the one reader of typed fields from a JSON object that came
// from outside (a config section, a strategy's parameters, a checkpoint, a
// model manifest). It names every field by its dotted path, checks types and
// ranges, remembers which keys were read so that Finish() can refuse the
// rest, and shows untrusted values only through JsonForMessage /
// QuoteForMessage. Parse the text with ParseJson (common/json.h) first.
#ifndef SHOAL_COMMON_JSON_FIELDS_H_
#define SHOAL_COMMON_JSON_FIELDS_H_

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace shoal {

// JsonFields reads one JSON object, which must outlive it. Not thread-safe.
// A field that is absent leaves its output unchanged (Require makes fields
// mandatory); a field of the wrong type or out of range is an error naming
// it. Errors carry the context's code and words, so a config says
// InvalidArgument "'fit.momentum' = 1.5 is out of range [0, 0.999]" and a
// checkpoint says DataLoss "checkpoint 'f': field 'round' is missing".
//
// Example:
//   JsonFields fit(config.at("fit"), "fit");
//   double lr = 0.05;
//   SHOAL_RETURN_IF_ERROR(fit.Number("learning_rate", 0, 100, &lr, /*lo_open=*/true));
//   SHOAL_RETURN_IF_ERROR(fit.Finish());  // unknown keys are errors
class JsonFields {
 public:
  // Context: how errors read; shared by a reader and its children.
  struct Context {
    absl::StatusCode code = absl::StatusCode::kInvalidArgument;
    std::string prefix;        // before the field, e.g. "checkpoint 'f': field "
    std::string suffix;        // after a range or unknown-key error
    std::string noun = "key";  // "unknown key 'x'" / "unknown parameter 'x'"
    // A file Shoal wrote: a wrong type "has the wrong type (string)", a
    // value out of range "is 5, outside [0, 3]".
    bool stored_file = false;
    std::string document = "the document";  // what a path of "" is called
  };

  // `path` is the object's dotted path ("" for the document itself).
  JsonFields(const nlohmann::json& object, std::string path, Context context);
  explicit JsonFields(const nlohmann::json& object, std::string path = "");

  const std::string& path() const { return path_; }
  const nlohmann::json& object() const { return object_; }
  // Key returns the dotted path of `key` in this object.
  std::string Key(const std::string& key) const;
  // Has: the object holds `key` (null counts). Does not mark it read.
  bool Has(const std::string& key) const;
  // IsNull: the object holds `key` and it is null.
  bool IsNull(const std::string& key) const;

  // Error is an error about `key` in this reader's words: "'<path.key>'
  // <what>" between the context's prefix and nothing.
  absl::Status Error(const std::string& key, const std::string& what) const;

  // Require refuses the first of `keys` that is absent ("is missing").
  absl::Status Require(const std::vector<std::string>& keys) const;

  // Number reads a number in [lo, hi], or (lo, hi] / [lo, hi) when the bound
  // is open; never NaN or infinite.
  absl::Status Number(const std::string& key, double lo, double hi, double* out,
                      bool lo_open = false, bool hi_open = false);
  // NumberOrNan reads any number; null reads as NaN (how a non-finite value
  // is written).
  absl::Status NumberOrNan(const std::string& key, double* out);
  // Integer reads an integer in [lo, hi] (a float such as 1.0 is refused).
  template <typename Int>
  absl::Status Integer(const std::string& key, int64_t lo, int64_t hi, Int* out) {
    int64_t value = 0;
    bool present = false;
    absl::Status status = ReadInteger(key, lo, hi, &value, &present);
    if (status.ok() && present) *out = static_cast<Int>(value);
    return status;
  }
  absl::Status Bool(const std::string& key, bool* out);
  absl::Status String(const std::string& key, std::string* out);
  // NonEmptyString is String refusing "" ("is empty").
  absl::Status NonEmptyString(const std::string& key, std::string* out);
  // String with choices: one of `choices`.
  absl::Status String(const std::string& key, const std::vector<std::string>& choices,
                      std::string* out);
  // Metrics reads an object of numbers: integers as int64, other numbers as
  // double, null as NaN.
  absl::Status Metrics(const std::string& key, shoal::Metrics* out);
  // Strings reads an array of strings.
  absl::Status Strings(const std::string& key, std::vector<std::string>* out);

  // Object reads `key` as an object and returns its reader (path "<path>.key").
  absl::StatusOr<JsonFields> Object(const std::string& key);
  // Objects reads `key` as an array of objects ("<path>.key[i]").
  absl::StatusOr<std::vector<JsonFields>> Objects(const std::string& key);
  // Members reads `key` as an object of objects, in key order; each child's
  // path quotes its (untrusted) name: "<path>.key.'name'".
  absl::StatusOr<std::vector<std::pair<std::string, JsonFields>>> Members(const std::string& key);
  // Raw marks `key` read and returns it (it must be present: check Has).
  const nlohmann::json& Raw(const std::string& key);

  // Finish refuses an object that is not one, and keys nobody read, listing
  // the known ones.
  absl::Status Finish() const;

 private:
  absl::Status ReadInteger(const std::string& key, int64_t lo, int64_t hi, int64_t* out,
                           bool* present);
  // Find marks `key` read and returns its value, or null when absent.
  const nlohmann::json* Find(const std::string& key);
  // TypeError says that `path` (a full dotted path) is not `want`.
  absl::Status TypeError(const std::string& path, const nlohmann::json& value,
                         const char* want) const;
  absl::Status RangeError(const std::string& key, const std::string& value,
                          const std::string& range) const;
  absl::Status Fail(const std::string& message) const;

  const nlohmann::json& object_;
  std::string path_;
  Context context_;
  std::set<std::string> read_;
};

// MetricsToJson writes metrics as JsonFields::Metrics reads them: an object
// of numbers, non-finite values as null.
nlohmann::json MetricsToJson(const Metrics& metrics);

}  // namespace shoal

#endif  // SHOAL_COMMON_JSON_FIELDS_H_
