// shoal report: one self-contained HTML page comparing finished runs.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/files.h"
#include "common/status.h"
#include "experiment/report.h"

namespace shoal::cli {
namespace {

absl::Status RunReport(const ReportFlags& flags) {
  SHOAL_RETURN_IF_ERROR(CheckWritableTarget(flags.output, "--output"));
  if (flags.runs.size() > kMaxReportRuns) {
    return absl::InvalidArgumentError(absl::StrCat(flags.runs.size(), " runs: a report compares at most ",
                                                   kMaxReportRuns, "; write several reports"));
  }
  ReportOptions options;
  options.title = flags.title;
  options.max_clients = flags.max_clients;
  std::vector<ReportRun> runs;
  for (const std::string& path : flags.runs) {
    SHOAL_ASSIGN_OR_RETURN(ReportRun run, ReadRun(path, options));
    const size_t rounds = run.rounds.empty() ? 0 : run.rounds.back().round;
    Say("%s: %s, %s, %zu round%s%s%s\n", run.label.c_str(), run.name.c_str(), run.strategy.c_str(),
        rounds, rounds == 1 ? "" : "s", run.simulated ? ", simulated" : "",
        run.client_classes.empty() ? "" : absl::StrCat(", ", run.client_classes.size(),
                                                       " clients' labels").c_str());
    runs.push_back(std::move(run));
  }
  SHOAL_ASSIGN_OR_RETURN(const std::string html, RenderReport(runs, options));
  if (absl::Status written = WriteFileAtomically(flags.output, html); !written.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot write '", flags.output, "': ", written.message()));
  }
  Say("wrote %s (%zu KB, self-contained: open it in any browser, offline)\n",
      flags.output.c_str(), html.size() / 1024);
  return absl::OkStatus();
}

}  // namespace

int RunReportCommand(const ReportFlags& flags) {
  absl::Status status = RunReport(flags);
  if (!status.ok()) {
    PrintCommandError("report", status.message());
    // Bad input (the runs, the flags) is 2; the machine's own trouble 1.
    return absl::IsInternal(status) ? 1 : 2;
  }
  return 0;
}

}  // namespace shoal::cli
