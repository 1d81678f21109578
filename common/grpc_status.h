// The one conversion between absl::Status and grpc::Status.
#ifndef SHOAL_COMMON_GRPC_STATUS_H_
#define SHOAL_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace shoal {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace shoal

#endif  // SHOAL_COMMON_GRPC_STATUS_H_
