#include "server/admin_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/pki.h"
#include "common/status.h"
#include "common/tls.h"
#include "server/grpc_service.h"

namespace shoal {
namespace {

constexpr uint32_t kDefaultLogLines = 100;
constexpr uint32_t kMaxLogLines = 10000;

int64_t UnixMs(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }

void MetricsToMap(const Metrics& metrics, google::protobuf::Map<std::string, double>* out) {
  for (const auto& [key, value] : metrics) (*out)[key] = MetricAsDouble(value);
}

void ScheduleToProto(const ScheduleInfo& info, v1::ScheduleInfo* out) {
  out->set_schedule_id(info.id);
  out->set_name(info.name);
  out->set_every_s(absl::ToDoubleSeconds(info.every));
  out->set_when_new_examples(info.new_examples);
  out->set_created_unix_ms(UnixMs(info.created));
  out->set_last_submitted_unix_ms(UnixMs(info.last_submitted));
  for (const std::string& run : info.runs) out->add_runs(run);
}

}  // namespace

void RunInfoToProto(const RunInfo& info, v1::RunInfo* out) {
  out->set_run_id(info.id);
  out->set_name(info.name);
  out->set_state(RunStateName(info.state));
  out->set_submitted_unix_ms(UnixMs(info.submitted));
  out->set_started_unix_ms(UnixMs(info.started));
  out->set_finished_unix_ms(UnixMs(info.finished));
  out->set_rounds_done(info.rounds_done);
  out->set_rounds_planned(info.rounds_planned);
  out->set_message(info.message);
  out->set_cancel_requested(info.cancel_requested);
  out->set_final_version(info.final_version);
  out->set_strategy(info.strategy);
  MetricsToMap(info.metrics, out->mutable_metrics());
}

AdminService::AdminService(AdminServiceOptions options, RunQueue* runs, ServingCatalog* catalog,
                           Rollout* rollout)
    : options_(std::move(options)),
      runs_(runs),
      catalog_(catalog),
      rollout_(rollout) {}

absl::Status AdminService::Admit(grpc::ServerContext* ctx,
                                 const google::protobuf::Message& request,
                                 absl::string_view call) {
  absl::Status status = ValidateRequestStrings(request);
  if (status.ok() && options_.require_admin_certificate) {
    const grpc::AuthContext& auth = *ctx->auth_context();
    const std::vector<grpc::string_ref> pems = auth.FindPropertyValues(kPeerCertificateProperty);
    const std::vector<grpc::string_ref> names = auth.FindPropertyValues(kAuthNameProperty);
    const std::string name =
        names.empty() ? std::string() : std::string(names.front().data(), names.front().size());
    if (!auth.IsPeerAuthenticated() || pems.empty()) {
      status = absl::UnauthenticatedError(
          "no client certificate: the admin service needs an admin certificate (`shoal certs "
          "admin --dir PKI --id NAME`, then --pki-dir PKI/admins/NAME)");
    } else if (!HasAdminRole(std::string(pems.front().data(), pems.front().size()))) {
      status = absl::PermissionDeniedError(absl::StrCat(
          "the certificate for '", name,
          "' is a device's, not an admin's: admin calls need a certificate from `shoal certs "
          "admin`"));
    } else if (!options_.revoked_file.empty()) {
      absl::StatusOr<absl::flat_hash_set<std::string>> revoked =
          ReadRevokedClients(options_.revoked_file);
      if (!revoked.ok()) {
        status = absl::UnavailableError(absl::StrCat("cannot read the revocation list: ",
                                                     revoked.status().message()));
      } else if (revoked->contains(name)) {
        status = absl::PermissionDeniedError(absl::StrCat("admin '", name, "' is revoked"));
      }
    }
  }
  int64_t suppressed = 0;
  if (!status.ok() && refusal_log_.Allow(&suppressed)) {
    spdlog::warn("admin call {} from {} refused: {}{}", std::string(call), ctx->peer(),
                 std::string(status.message()), SuppressedNote(suppressed));
  }
  return status;
}

grpc::Status AdminService::SubmitRun(grpc::ServerContext* ctx, const v1::SubmitRunRequest* req,
                                     v1::RunInfo* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "SubmitRun"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  const std::string source = req->source().empty() ? "the submitted config" : req->source();
  absl::StatusOr<RunInfo> info = runs_->Submit(req->config(), source);
  if (!info.ok()) {
    spdlog::warn("run submission refused: {}", std::string(info.status().message()));
    return ToGrpcStatus(info.status());
  }
  RunInfoToProto(*info, resp);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListRuns(grpc::ServerContext* ctx, const v1::ListRunsRequest* req,
                                    v1::ListRunsResponse* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "ListRuns"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  for (const RunInfo& info : runs_->List()) RunInfoToProto(info, resp->add_runs());
  return grpc::Status::OK;
}

grpc::Status AdminService::GetRun(grpc::ServerContext* ctx, const v1::RunRequest* req,
                                  v1::RunInfo* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "GetRun"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  absl::StatusOr<RunInfo> info = runs_->Get(req->run_id());
  if (!info.ok()) return ToGrpcStatus(info.status());
  RunInfoToProto(*info, resp);
  return grpc::Status::OK;
}

grpc::Status AdminService::CancelRun(grpc::ServerContext* ctx, const v1::RunRequest* req,
                                     v1::RunInfo* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "CancelRun"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  absl::StatusOr<RunInfo> info = runs_->Cancel(req->run_id());
  if (!info.ok()) return ToGrpcStatus(info.status());
  RunInfoToProto(*info, resp);
  return grpc::Status::OK;
}

grpc::Status AdminService::RunLogs(grpc::ServerContext* ctx, const v1::RunLogsRequest* req,
                                   v1::RunLogsResponse* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "RunLogs"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  const uint32_t tail =
      req->tail() == 0 ? kDefaultLogLines : std::min<uint32_t>(req->tail(), kMaxLogLines);
  absl::StatusOr<std::vector<std::string>> lines = runs_->Logs(req->run_id(), tail);
  if (!lines.ok()) return ToGrpcStatus(lines.status());
  for (std::string& line : *lines) resp->add_lines(std::move(line));
  return grpc::Status::OK;
}

absl::Status AdminService::Serving(v1::ServingStatus* out) const {
  if (catalog_ == nullptr || rollout_ == nullptr) {
    return absl::FailedPreconditionError(
        "this federation keeps no serving versions (start `shoal serve` with --pki-dir)");
  }
  if (std::optional<ModelRecord> current = catalog_->Current()) {
    v1::ServingVersionInfo* info = out->mutable_current();
    info->set_version(current->version);
    if (current->serving) {
      info->set_run_id(current->serving->run);
      info->set_training_version(current->serving->training_version);
    }
    info->set_sha256_hex(current->sha256_hex);
    MetricsToMap(current->metrics, info->mutable_metrics());
  }
  for (int64_t version : catalog_->Lineage()) out->add_lineage(version);
  const RolloutStatus rollout = rollout_->status();
  out->set_rollout_stage(RolloutStageName(rollout.stage));
  out->set_rollout_version(rollout.version);
  out->set_rollout_previous(rollout.previous);
  out->set_canary_reports(rollout.canary_reports);
  out->set_canary_refusals(rollout.canary_refusals);
  out->set_rollout_reason(rollout.reason);
  const std::map<std::string, FleetServing> fleet =
      options_.fleet ? options_.fleet() : std::map<std::string, FleetServing>();
  for (const auto& [id, device] : fleet) {
    v1::FleetDevice* d = out->add_devices();
    d->set_client_id(id);
    d->set_serving_version(device.serving_version);
    d->set_offered_version(device.offered_version);
    d->set_accepted(device.accepted);
    d->set_reason(device.reason);
    d->set_metric(device.metric);
    d->set_offered_value(device.offered_value);
    d->set_current_value(device.current_value);
    d->set_reported_unix_ms(UnixMs(device.at));
  }
  return absl::OkStatus();
}

grpc::Status AdminService::Promote(grpc::ServerContext* ctx, const v1::PromoteRequest* req,
                                   v1::ServingStatus* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "Promote"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  if (rollout_ == nullptr) return ToGrpcStatus(Serving(resp));
  if (req->version() < kLatestVersion) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("version ", req->version(), " is not a version (-1: the run's newest)")));
  }
  absl::StatusOr<std::string> models = runs_->ModelsDir(req->run_id());
  if (!models.ok()) return ToGrpcStatus(models.status());
  absl::StatusOr<ModelRecord> promoted = rollout_->Promote(req->run_id(), *models, req->version());
  if (!promoted.ok()) return ToGrpcStatus(promoted.status());
  spdlog::info("admin promoted run '{}' version {} as serving version {}", req->run_id(),
               promoted->serving ? promoted->serving->training_version : req->version(),
               promoted->version);
  return ToGrpcStatus(Serving(resp));
}

grpc::Status AdminService::Rollback(grpc::ServerContext* ctx, const v1::RollbackRequest* req,
                                    v1::ServingStatus* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "Rollback"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  if (rollout_ == nullptr) return ToGrpcStatus(Serving(resp));
  absl::StatusOr<ModelRecord> rolled = rollout_->Rollback();
  if (!rolled.ok()) return ToGrpcStatus(rolled.status());
  spdlog::info("admin rolled back: serving version {}", rolled->version);
  return ToGrpcStatus(Serving(resp));
}

grpc::Status AdminService::GetServing(grpc::ServerContext* ctx, const v1::ServingRequest* req,
                                      v1::ServingStatus* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "GetServing"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  return ToGrpcStatus(Serving(resp));
}

grpc::Status AdminService::ScheduleRun(grpc::ServerContext* ctx,
                                       const v1::ScheduleRunRequest* req, v1::ScheduleInfo* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "ScheduleRun"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  // Up to ten years; NaN and negatives are refused here, before the queue.
  if (!(req->every_s() >= 0 && req->every_s() <= 10 * 365 * 86400.0) ||
      req->when_new_examples() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "every_s must be in [0, 10 years] and when_new_examples >= 0"));
  }
  const std::string source = req->source().empty() ? "the submitted config" : req->source();
  absl::StatusOr<ScheduleInfo> info = runs_->AddSchedule(
      req->config(), source, absl::Seconds(req->every_s()), req->when_new_examples());
  if (!info.ok()) {
    spdlog::warn("schedule refused: {}", std::string(info.status().message()));
    return ToGrpcStatus(info.status());
  }
  ScheduleToProto(*info, resp);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListSchedules(grpc::ServerContext* ctx,
                                         const v1::ListSchedulesRequest* req,
                                         v1::ListSchedulesResponse* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "ListSchedules"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  for (const ScheduleInfo& info : runs_->Schedules()) ScheduleToProto(info, resp->add_schedules());
  return grpc::Status::OK;
}

grpc::Status AdminService::CancelSchedule(grpc::ServerContext* ctx,
                                          const v1::ScheduleRequest* req, v1::ScheduleInfo* resp) {
  if (absl::Status admitted = Admit(ctx, *req, "CancelSchedule"); !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  absl::StatusOr<ScheduleInfo> info = runs_->CancelSchedule(req->schedule_id());
  if (!info.ok()) return ToGrpcStatus(info.status());
  ScheduleToProto(*info, resp);
  return grpc::Status::OK;
}

}  // namespace shoal
