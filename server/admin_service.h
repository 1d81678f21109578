// AdminService: the gRPC face of a long-running federation for its
// administrators (shoal.v1.Admin, docs/lifecycle.md): submit, list, cancel
// and read the logs of runs; promote and roll back serving versions; list
// what the fleet serves. It shares the federation's port; under TLS only a
// caller whose certificate carries the admin role (`shoal certs admin`,
// common/pki.h) is admitted, so a device's certificate is refused.
#ifndef SHOAL_SERVER_ADMIN_SERVICE_H_
#define SHOAL_SERVER_ADMIN_SERVICE_H_

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "common/logging.h"
#include "server/federation_server.h"
#include "server/rollout.h"
#include "server/run_queue.h"
#include "server/serving_catalog.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal {

struct AdminServiceOptions {
  // Require an admin certificate (set when the federation uses TLS; a
  // plaintext federation admits anyone who reaches the port).
  bool require_admin_certificate = true;
  // Revoked IDs (one per line, as devices'); an admin listed there is
  // refused. Empty: none.
  std::string revoked_file;
  // Each device's last serving report (FederationHost::fleet); unset: none.
  std::function<std::map<std::string, FleetServing>()> fleet;
};

// Thread-safe. Owns none of the parts; each must outlive it. `rollout` and
// `catalog` may be null (no serving versions): the serving calls then
// answer FAILED_PRECONDITION.
class AdminService final : public v1::Admin::Service {
 public:
  AdminService(AdminServiceOptions options, RunQueue* runs, ServingCatalog* catalog,
               Rollout* rollout);

  grpc::Status SubmitRun(grpc::ServerContext* ctx, const v1::SubmitRunRequest* req,
                         v1::RunInfo* resp) override;
  grpc::Status ListRuns(grpc::ServerContext* ctx, const v1::ListRunsRequest* req,
                        v1::ListRunsResponse* resp) override;
  grpc::Status GetRun(grpc::ServerContext* ctx, const v1::RunRequest* req,
                      v1::RunInfo* resp) override;
  grpc::Status CancelRun(grpc::ServerContext* ctx, const v1::RunRequest* req,
                         v1::RunInfo* resp) override;
  grpc::Status RunLogs(grpc::ServerContext* ctx, const v1::RunLogsRequest* req,
                       v1::RunLogsResponse* resp) override;
  grpc::Status Promote(grpc::ServerContext* ctx, const v1::PromoteRequest* req,
                       v1::ServingStatus* resp) override;
  grpc::Status Rollback(grpc::ServerContext* ctx, const v1::RollbackRequest* req,
                        v1::ServingStatus* resp) override;
  grpc::Status GetServing(grpc::ServerContext* ctx, const v1::ServingRequest* req,
                          v1::ServingStatus* resp) override;
  grpc::Status ScheduleRun(grpc::ServerContext* ctx, const v1::ScheduleRunRequest* req,
                           v1::ScheduleInfo* resp) override;
  grpc::Status ListSchedules(grpc::ServerContext* ctx, const v1::ListSchedulesRequest* req,
                             v1::ListSchedulesResponse* resp) override;
  grpc::Status CancelSchedule(grpc::ServerContext* ctx, const v1::ScheduleRequest* req,
                              v1::ScheduleInfo* resp) override;

 private:
  // Admit checks the caller's admin role and bounds the request's strings.
  absl::Status Admit(grpc::ServerContext* ctx, const google::protobuf::Message& request,
                     absl::string_view call);
  absl::Status Serving(v1::ServingStatus* out) const;

  const AdminServiceOptions options_;
  // Refusals are logged at most 5 a second: the peer decides how many.
  LogRateLimiter refusal_log_{/*lines_per_second=*/5, /*burst=*/50};
  RunQueue* const runs_;
  ServingCatalog* const catalog_;
  Rollout* const rollout_;
};

// RunInfoToProto fills the wire form of a run's info.
void RunInfoToProto(const RunInfo& info, v1::RunInfo* out);

}  // namespace shoal

#endif  // SHOAL_SERVER_ADMIN_SERVICE_H_
