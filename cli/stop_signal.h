// Stopping a run cleanly on SIGINT / SIGTERM: the round in progress
// finishes, its results are kept, and the run ends (and can be resumed from
// its checkpoint).
//
// Mechanism: a process-wide handler writes the signal's number to a pipe
// (the only thing it does, which is async-signal-safe), so the signal may
// land on any thread, including ones that libraries start before main()
// (OpenBLAS starts its pool when it is loaded) and that no signal mask set
// later can reach. A StopOnSignal watches the pipe; a signal that came
// before it existed is still in the pipe and is acted on when it starts. A
// second signal ends the process at once, as its default action would.
#ifndef SHOAL_CLI_STOP_SIGNAL_H_
#define SHOAL_CLI_STOP_SIGNAL_H_

#include <atomic>
#include <functional>
#include <thread>

#include "absl/status/status.h"

namespace shoal::cli {

// InstallStopSignalHandlers installs the SIGINT and SIGTERM handlers; call
// it first thing in a command that runs a Coordinator. Idempotent.
// Internal error when the pipe or the handlers cannot be set up.
absl::Status InstallStopSignalHandlers();

// StopOnSignal calls `stop` (e.g. FederationServer::Stop, which ends the run
// after the current round) once when SIGINT or SIGTERM arrives (or has
// arrived since InstallStopSignalHandlers), from a thread that waits on the
// pipe for as long as it lives. Not thread-safe; one at a time.
class StopOnSignal {
 public:
  explicit StopOnSignal(std::function<void()> stop);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  // The signal that asked for the stop, or 0.
  int received() const { return received_.load(); }

 private:
  int wake_[2] = {-1, -1};  // the destructor's wake-up for the thread
  std::atomic<int> received_{0};
  std::thread thread_;
};

}  // namespace shoal::cli

#endif  // SHOAL_CLI_STOP_SIGNAL_H_
