#include "common/json_fields.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/quote.h"

namespace shoal {

using Json = nlohmann::json;

JsonFields::JsonFields(const Json& object, std::string path, Context context)
    : object_(object), path_(std::move(path)), context_(std::move(context)) {}

JsonFields::JsonFields(const Json& object, std::string path)
    : JsonFields(object, std::move(path), Context()) {}

std::string JsonFields::Key(const std::string& key) const {
  return path_.empty() ? key : absl::StrCat(path_, ".", key);
}

bool JsonFields::Has(const std::string& key) const {
  return object_.is_object() && object_.contains(key);
}

bool JsonFields::IsNull(const std::string& key) const {
  return Has(key) && object_.at(key).is_null();
}

absl::Status JsonFields::Fail(const std::string& message) const {
  return absl::Status(context_.code, absl::StrCat(context_.prefix, message));
}

absl::Status JsonFields::Error(const std::string& key, const std::string& what) const {
  return Fail(absl::StrCat("'", Key(key), "' ", what));
}

absl::Status JsonFields::TypeError(const std::string& path, const Json& value,
                                   const char* want) const {
  if (context_.stored_file) {
    return Fail(absl::StrCat("'", path, "' has the wrong type (", value.type_name(), ")"));
  }
  return Fail(absl::StrCat("'", path, "' must be ", want, ", got ", JsonForMessage(value)));
}

absl::Status JsonFields::RangeError(const std::string& key, const std::string& value,
                                    const std::string& range) const {
  if (context_.stored_file) {
    return Fail(absl::StrCat("'", Key(key), "' is ", value, ", outside ", range));
  }
  return Fail(
      absl::StrCat("'", Key(key), "' = ", value, " is out of range ", range, context_.suffix));
}

absl::Status JsonFields::Require(const std::vector<std::string>& keys) const {
  for (const std::string& key : keys) {
    if (!Has(key)) return Error(key, "is missing");
  }
  return absl::OkStatus();
}

const Json* JsonFields::Find(const std::string& key) {
  read_.insert(key);
  return Has(key) ? &object_.at(key) : nullptr;
}

absl::Status JsonFields::Number(const std::string& key, double lo, double hi, double* out,
                                bool lo_open, bool hi_open) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) return TypeError(Key(key), *v, "a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo) || (hi_open && d == hi)) {
    return RangeError(key, absl::StrCat(d),
                      absl::StrCat(lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]"));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status JsonFields::NumberOrNan(const std::string& key, double* out) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number() && !v->is_null()) return TypeError(Key(key), *v, "a number");
  *out = v->is_null() ? std::numeric_limits<double>::quiet_NaN() : v->get<double>();
  return absl::OkStatus();
}

absl::Status JsonFields::ReadInteger(const std::string& key, int64_t lo, int64_t hi, int64_t* out,
                                     bool* present) {
  const Json* v = Find(key);
  *present = v != nullptr;
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number_integer()) return TypeError(Key(key), *v, "an integer");
  // An unsigned JSON integer above INT64_MAX would wrap in get<int64_t>();
  // it is out of every range, and the message names it as written.
  const bool too_large =
      v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
  const int64_t i = too_large ? 0 : v->get<int64_t>();
  if (too_large || i < lo || i > hi) {
    return RangeError(key, JsonForMessage(*v), absl::StrCat("[", lo, ", ", hi, "]"));
  }
  *out = i;
  return absl::OkStatus();
}

absl::Status JsonFields::Bool(const std::string& key, bool* out) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return TypeError(Key(key), *v, "true or false");
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status JsonFields::String(const std::string& key, std::string* out) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return TypeError(Key(key), *v, "a string");
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status JsonFields::NonEmptyString(const std::string& key, std::string* out) {
  std::string value = *out;
  absl::Status status = String(key, &value);
  if (!status.ok()) return status;
  if (Has(key) && value.empty()) return Error(key, "is empty");
  *out = std::move(value);
  return absl::OkStatus();
}

absl::Status JsonFields::String(const std::string& key, const std::vector<std::string>& choices,
                                std::string* out) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string() ||
      std::find(choices.begin(), choices.end(), v->get<std::string>()) == choices.end()) {
    return Error(key, absl::StrCat("must be one of ", absl::StrJoin(choices, ", "), ", got ",
                                   JsonForMessage(*v)));
  }
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status JsonFields::Metrics(const std::string& key, shoal::Metrics* out) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return TypeError(Key(key), *v, "an object");
  for (const auto& [name, value] : v->items()) {
    const bool fits_int64 =
        !value.is_number_unsigned() || value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
    if (value.is_number_integer() && fits_int64) {
      (*out)[name] = value.get<int64_t>();
    } else if (value.is_number()) {
      (*out)[name] = value.get<double>();
    } else if (value.is_null()) {
      (*out)[name] = std::numeric_limits<double>::quiet_NaN();
    } else {
      return TypeError(absl::StrCat(Key(key), ".", QuoteForMessage(name)), value, "a number");
    }
  }
  return absl::OkStatus();
}

absl::Status JsonFields::Strings(const std::string& key, std::vector<std::string>* out) {
  const Json* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_array()) return TypeError(Key(key), *v, "an array of strings");
  std::vector<std::string> values;
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) {
      return TypeError(absl::StrCat(Key(key), "[", i, "]"), (*v)[i], "a string");
    }
    values.push_back((*v)[i].get<std::string>());
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::StatusOr<JsonFields> JsonFields::Object(const std::string& key) {
  const Json* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (!v->is_object()) return TypeError(Key(key), *v, "an object");
  return JsonFields(*v, Key(key), context_);
}

absl::StatusOr<std::vector<JsonFields>> JsonFields::Objects(const std::string& key) {
  const Json* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (!v->is_array()) return TypeError(Key(key), *v, "an array");
  std::vector<JsonFields> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string at = absl::StrCat(Key(key), "[", i, "]");
    if (!(*v)[i].is_object()) return TypeError(at, (*v)[i], "an object");
    out.emplace_back((*v)[i], at, context_);
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, JsonFields>>> JsonFields::Members(
    const std::string& key) {
  const Json* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (!v->is_object()) return TypeError(Key(key), *v, "an object");
  std::vector<std::pair<std::string, JsonFields>> out;
  for (const auto& [name, value] : v->items()) {
    const std::string at = absl::StrCat(Key(key), ".", QuoteForMessage(name));
    if (!value.is_object()) return TypeError(at, value, "an object");
    out.emplace_back(name, JsonFields(value, at, context_));
  }
  return out;
}

const Json& JsonFields::Raw(const std::string& key) {
  read_.insert(key);
  return object_.at(key);
}

absl::Status JsonFields::Finish() const {
  if (!object_.is_object()) {
    const std::string what = path_.empty() ? context_.document : absl::StrCat("'", path_, "'");
    return Fail(
        absl::StrCat(what, " must be an object, got ", JsonForMessage(object_), context_.suffix));
  }
  for (const auto& [key, value] : object_.items()) {
    if (read_.count(key) != 0) continue;
    return Fail(
        absl::StrCat("unknown ", context_.noun, " ", QuoteForMessage(Key(key), 80), context_.suffix,
                     read_.empty() ? std::string(" (it takes none)")
                                   : absl::StrCat(" (known: ", absl::StrJoin(read_, ", "), ")")));
  }
  return absl::OkStatus();
}

Json MetricsToJson(const Metrics& metrics) {
  Json out = Json::object();
  for (const auto& [name, value] : metrics) {
    std::visit([&out, key = name](auto x) { out[key] = x; }, value);
  }
  return out;
}

}  // namespace shoal
