// Stopping a run cleanly on SIGINT / SIGTERM: the round in progress
// finishes, its results are kept, and the run ends.
#ifndef SHOAL_CLI_STOP_SIGNAL_H_
#define SHOAL_CLI_STOP_SIGNAL_H_

#include <thread>

#include "server/coordinator.h"

namespace shoal::cli {

// BlockStopSignals must run before any thread starts, so every thread
// inherits the mask and only StopOnSignal's thread receives them.
void BlockStopSignals();

// StopOnSignal asks the coordinator to stop after the current round on
// SIGINT/SIGTERM, from a thread that waits in sigwait (no handler races),
// for as long as it lives.
class StopOnSignal {
 public:
  explicit StopOnSignal(Coordinator* coordinator);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  std::thread thread_;
};

}  // namespace shoal::cli

#endif  // SHOAL_CLI_STOP_SIGNAL_H_
