// `shoal run submit|list|status|cancel|logs` and `shoal model
// promote|rollback|status`: the admin verbs of a long-running federation
// (`shoal serve`), over its admin service with an admin certificate.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "common/files.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/tls.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal::cli {
namespace {

std::string Time(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

std::string MetricsText(const google::protobuf::Map<std::string, double>& metrics) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : metrics) parts.push_back(absl::StrFormat("%s %.4f", key, value));
  std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, ", ");
}

void PrintJson(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  std::printf("%s\n", text.c_str());
}

void PrintRun(const v1::RunInfo& run) {
  std::printf("%s: %s%s, round %u of %u (%s)\n", run.run_id().c_str(), run.state().c_str(),
              run.cancel_requested() && run.state() == "running" ? " (cancel requested)" : "",
              run.rounds_done(), run.rounds_planned(), run.strategy().c_str());
  std::printf("  submitted %s, started %s, finished %s\n", Time(run.submitted_unix_ms()).c_str(),
              Time(run.started_unix_ms()).c_str(), Time(run.finished_unix_ms()).c_str());
  if (run.final_version() >= 0) {
    std::printf("  newest model version %lld%s%s\n", static_cast<long long>(run.final_version()),
                run.metrics().empty() ? "" : ": ", MetricsText(run.metrics()).c_str());
  }
  if (!run.message().empty()) std::printf("  %s\n", run.message().c_str());
}

void PrintServing(const v1::ServingStatus& s) {
  if (s.has_current()) {
    std::printf("serving version %lld: run %s, training version %lld%s%s\n",
                static_cast<long long>(s.current().version()), s.current().run_id().c_str(),
                static_cast<long long>(s.current().training_version()),
                s.current().metrics().empty() ? "" : ", ",
                MetricsText(s.current().metrics()).c_str());
  } else {
    std::printf("no serving version yet\n");
  }
  std::vector<std::string> lineage;
  for (int64_t v : s.lineage()) lineage.push_back(absl::StrCat(v));
  if (!lineage.empty()) std::printf("lineage (a rollback walks back): %s\n",
                                    absl::StrJoin(lineage, " <- ").c_str());
  std::printf("rollout of version %lld: %s (%lld canary report(s), %lld refusal(s))%s%s\n",
              static_cast<long long>(s.rollout_version()), s.rollout_stage().c_str(),
              static_cast<long long>(s.canary_reports()),
              static_cast<long long>(s.canary_refusals()),
              s.rollout_reason().empty() ? "" : ": ", s.rollout_reason().c_str());
  std::printf("%zu device(s):\n", static_cast<size_t>(s.devices_size()));
  for (const v1::FleetDevice& d : s.devices()) {
    std::printf("  %-24s serves %lld; last offered %lld %s%s%s (at %s)\n", d.client_id().c_str(),
                static_cast<long long>(d.serving_version()),
                static_cast<long long>(d.offered_version()),
                d.accepted() ? "accepted" : "refused", d.reason().empty() ? "" : ": ",
                d.reason().c_str(), Time(d.reported_unix_ms()).c_str());
  }
}

// Exit code of a failed call: 2 when the request was at fault.
int ExitCodeOf(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ||
                 absl::IsFailedPrecondition(status) || absl::IsPermissionDenied(status) ||
                 absl::IsUnauthenticated(status) || absl::IsResourceExhausted(status)
             ? 2
             : 1;
}

absl::Status Run(const AdminFlags& flags) {
  if (flags.server.empty()) return absl::InvalidArgumentError("--server is empty");
  if (flags.pki_dir.empty()) {
    return absl::InvalidArgumentError(
        "no admin certificate: pass --pki-dir PKI/admins/NAME (from `shoal certs admin --dir "
        "PKI --id NAME`)");
  }
  SHOAL_ASSIGN_OR_RETURN(TlsMaterial tls, Annotate(LoadClientTls(flags.pki_dir), "--pki-dir"));
  auto stub = v1::Admin::NewStub(grpc::CreateChannel(flags.server, MakeChannelCredentials(&tls)));
  auto call = [&](auto method, const auto& request, auto* response) -> absl::Status {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status s = ((*stub).*method)(&ctx, request, response);
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      return absl::UnavailableError(absl::StrCat("cannot reach the admin service at ",
                                                 flags.server, ": ", s.error_message()));
    }
    return FromGrpcStatus(s);
  };
  switch (flags.action) {
    case AdminAction::kSubmit: {
      SHOAL_ASSIGN_OR_RETURN(std::string text, ReadFile(flags.config, size_t{1} << 20));
      if (!flags.every.empty() || flags.when_new_examples > 0) {
        v1::ScheduleRunRequest req;
        req.set_config(text);
        req.set_source(flags.config);
        if (!flags.every.empty()) {
          absl::Duration every;
          if (!absl::ParseDuration(flags.every, &every) || every < absl::ZeroDuration()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "--every '", flags.every, "' is not a duration (e.g. 6h, 90m, 1h30m)"));
          }
          req.set_every_s(absl::ToDoubleSeconds(every));
        }
        req.set_when_new_examples(flags.when_new_examples);
        v1::ScheduleInfo schedule;
        SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::ScheduleRun, req, &schedule));
        if (flags.json) {
          PrintJson(schedule);
        } else {
          std::printf("scheduled %s%s\n", schedule.schedule_id().c_str(),
                      schedule.runs().empty()
                          ? ""
                          : absl::StrCat(" (first run: ", schedule.runs(0), ")").c_str());
        }
        return absl::OkStatus();
      }
      v1::SubmitRunRequest req;
      req.set_config(text);
      req.set_source(flags.config);
      v1::RunInfo run;
      SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::SubmitRun, req, &run));
      if (flags.json) {
        PrintJson(run);
      } else {
        std::printf("submitted run %s (%u rounds of %s)\n", run.run_id().c_str(),
                    run.rounds_planned(), run.strategy().c_str());
      }
      std::fflush(stdout);
      if (!flags.wait) return absl::OkStatus();
      // Follow it to its end, a line per round.
      uint32_t shown = 0;
      v1::RunRequest get;
      get.set_run_id(run.run_id());
      while (run.state() == "queued" || run.state() == "running") {
        absl::SleepFor(absl::Milliseconds(500));
        SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::GetRun, get, &run));
        if (!flags.json && run.rounds_done() > shown) {
          shown = run.rounds_done();
          std::printf("round %u of %u: %s\n", shown, run.rounds_planned(),
                      MetricsText(run.metrics()).c_str());
          std::fflush(stdout);
        }
      }
      if (flags.json) PrintJson(run); else PrintRun(run);
      if (run.state() != "done") {
        return absl::AbortedError(absl::StrCat("run ", run.run_id(), " ended ", run.state()));
      }
      return absl::OkStatus();
    }
    case AdminAction::kList: {
      v1::ListRunsResponse resp;
      SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::ListRuns, v1::ListRunsRequest(), &resp));
      if (flags.json) {
        PrintJson(resp);
      } else if (resp.runs().empty()) {
        std::printf("no runs\n");
      } else {
        std::printf("%-28s %-10s %-9s %-16s %s\n", "RUN", "STATE", "ROUNDS", "SUBMITTED",
                    "METRICS");
        for (const v1::RunInfo& r : resp.runs()) {
          std::printf("%-28s %-10s %-9s %-16s %s\n", r.run_id().c_str(), r.state().c_str(),
                      absl::StrCat(r.rounds_done(), "/", r.rounds_planned()).c_str(),
                      Time(r.submitted_unix_ms()).substr(0, 16).c_str(),
                      MetricsText(r.metrics()).c_str());
        }
      }
      return absl::OkStatus();
    }
    case AdminAction::kStatus:
    case AdminAction::kCancel: {
      v1::RunRequest req;
      req.set_run_id(flags.run);
      v1::RunInfo run;
      SHOAL_RETURN_IF_ERROR(call(flags.action == AdminAction::kStatus
                                     ? &v1::Admin::Stub::GetRun
                                     : &v1::Admin::Stub::CancelRun,
                                 req, &run));
      if (flags.json) PrintJson(run); else PrintRun(run);
      return absl::OkStatus();
    }
    case AdminAction::kLogs: {
      v1::RunLogsRequest req;
      req.set_run_id(flags.run);
      req.set_tail(flags.tail);
      v1::RunLogsResponse resp;
      SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::RunLogs, req, &resp));
      if (flags.json) {
        PrintJson(resp);
      } else {
        for (const std::string& line : resp.lines()) std::printf("%s\n", line.c_str());
      }
      return absl::OkStatus();
    }
    case AdminAction::kSchedules: {
      v1::ListSchedulesResponse resp;
      SHOAL_RETURN_IF_ERROR(
          call(&v1::Admin::Stub::ListSchedules, v1::ListSchedulesRequest(), &resp));
      if (flags.json) {
        PrintJson(resp);
      } else if (resp.schedules().empty()) {
        std::printf("no schedules\n");
      } else {
        for (const v1::ScheduleInfo& sc : resp.schedules()) {
          std::vector<std::string> when;
          if (sc.every_s() > 0) {
            when.push_back(absl::StrCat("every ",
                                        absl::FormatDuration(absl::Seconds(sc.every_s()))));
          }
          if (sc.when_new_examples() > 0) {
            when.push_back(absl::StrCat("when devices hold ", sc.when_new_examples(),
                                        " new training examples"));
          }
          std::printf("%s: %s; %d run(s)%s%s; last submitted %s\n", sc.schedule_id().c_str(),
                      absl::StrJoin(when, " or ").c_str(), sc.runs_size(),
                      sc.runs().empty() ? "" : ", newest ",
                      sc.runs().empty() ? "" : sc.runs(sc.runs_size() - 1).c_str(),
                      Time(sc.last_submitted_unix_ms()).c_str());
        }
      }
      return absl::OkStatus();
    }
    case AdminAction::kUnschedule: {
      v1::ScheduleRequest req;
      req.set_schedule_id(flags.run);
      v1::ScheduleInfo schedule;
      SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::CancelSchedule, req, &schedule));
      if (flags.json) {
        PrintJson(schedule);
      } else {
        std::printf("schedule %s ended after %d run(s)\n", schedule.schedule_id().c_str(),
                    schedule.runs_size());
      }
      return absl::OkStatus();
    }
    case AdminAction::kPromote:
    case AdminAction::kRollback:
    case AdminAction::kServing: {
      v1::ServingStatus status;
      if (flags.action == AdminAction::kPromote) {
        v1::PromoteRequest req;
        req.set_run_id(flags.run);
        req.set_version(flags.version);
        SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::Promote, req, &status));
      } else if (flags.action == AdminAction::kRollback) {
        SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::Rollback, v1::RollbackRequest(), &status));
      } else {
        SHOAL_RETURN_IF_ERROR(call(&v1::Admin::Stub::GetServing, v1::ServingRequest(), &status));
      }
      if (flags.json) PrintJson(status); else PrintServing(status);
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

int RunAdminCommand(const AdminFlags& flags) {
  absl::Status status = Run(flags);
  if (!status.ok()) {
    PrintCommandError(flags.verb, status.message());
    return ExitCodeOf(status);
  }
  return 0;
}

}  // namespace shoal::cli
