// Error-propagation macros over absl::Status (Abseil 20220623 has none).
#ifndef SHOAL_COMMON_STATUS_H_
#define SHOAL_COMMON_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/status/statusor.h"

#define SHOAL_STATUS_CONCAT_INNER_(a, b) a##b
#define SHOAL_STATUS_CONCAT_(a, b) SHOAL_STATUS_CONCAT_INNER_(a, b)

// SHOAL_RETURN_IF_ERROR returns the status of `expr` if it is not OK.
//
// Example:
//   SHOAL_RETURN_IF_ERROR(store.Save(params));
#define SHOAL_RETURN_IF_ERROR(expr)                   \
  do {                                                \
    ::absl::Status shoal_status_ = (expr);            \
    if (!shoal_status_.ok()) return shoal_status_;    \
  } while (0)

// SHOAL_ASSIGN_OR_RETURN evaluates `rexpr` (an absl::StatusOr<T>), returns
// its status if it is not OK, and otherwise moves its value into `lhs`.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(Parameters params, ParametersFromProto(proto));
#define SHOAL_ASSIGN_OR_RETURN(lhs, rexpr) \
  SHOAL_ASSIGN_OR_RETURN_IMPL_(            \
      SHOAL_STATUS_CONCAT_(shoal_statusor_, __LINE__), lhs, rexpr)

#define SHOAL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace shoal {

// Annotate returns `status` with `context: ` prepended to its message; its
// payloads (e.g. the mark of a decline, common/types.h) stay.
inline absl::Status Annotate(const absl::Status& status,
                             absl::string_view context) {
  if (status.ok()) return status;
  absl::Status annotated(status.code(),
                         std::string(context) + ": " + std::string(status.message()));
  status.ForEachPayload([&annotated](absl::string_view type_url, const absl::Cord& payload) {
    annotated.SetPayload(type_url, payload);
  });
  return annotated;
}

// Annotate for a StatusOr: the value passes through, an error is annotated.
template <typename T>
absl::StatusOr<T> Annotate(absl::StatusOr<T> result, absl::string_view context) {
  if (result.ok()) return result;
  return Annotate(result.status(), context);
}

}  // namespace shoal

#endif  // SHOAL_COMMON_STATUS_H_
