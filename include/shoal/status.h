// shoal/status.h: errors as values.
//
// Every Shoal call that can fail returns absl::Status or absl::StatusOr<T>
// with a message a user can act on (it names the file, key or flag at
// fault). No Shoal call throws; LibTorch's exceptions stop inside Shoal.
// Codes used across the API:
//   InvalidArgument     bad options, config keys, data or model shapes
//   NotFound            a file or model version that does not exist
//   FailedPrecondition  state on disk that forbids the call (a checkpoint of
//                       another config, a run that cannot be resumed)
//   Unavailable         a server or port that cannot be reached or bound
//   Internal            a bug or an I/O failure
//
// SHOAL_RETURN_IF_ERROR(expr): returns the status of `expr` when not OK.
// SHOAL_ASSIGN_OR_RETURN(lhs, expr): `lhs = *expr` or returns its status.
//
// Example:
//   absl::StatusOr<int> Rounds(const std::string& path) {
//     SHOAL_ASSIGN_OR_RETURN(shoal::ExperimentConfig c,
//                            shoal::LoadExperimentConfig(path));
//     return static_cast<int>(c.coordinator.num_rounds);
//   }
#ifndef SHOAL_STATUS_H_
#define SHOAL_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status.h"

#endif  // SHOAL_STATUS_H_
