// SimulatedClock: the simulator's time, as a Clock the Coordinator runs on.
// The Simulator moves it, and nothing else does: forward to the first moment
// enough clients are online (WaitForLive), and forward as each round's
// results reach the round, to when the server would hear of each client. So
// every deadline the Coordinator and the secure round wait for is in
// simulated time, and a machine too slow to train a round in real time can
// never make one pass.
#ifndef SHOAL_SIMULATION_SIMULATED_CLOCK_H_
#define SHOAL_SIMULATION_SIMULATED_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace shoal::simulation {

// SimulatedClock is thread-safe. Simulated second 0 is absl::UnixEpoch().
//
// The simulated seconds are kept as the double the simulator computes them
// in, and Now() is derived from them, so what a run reports (round start and
// end times, availability lookups) does not pass through absl::Time's
// quarter-nanosecond ticks.
//
// Example:
//   SimulatedClock clock;
//   options.clock = &clock;      // the Coordinator waits on simulated time
//   clock.AdvanceTo(42.5);       // waiters whose deadline is at most 42.5 s wake
//   clock.seconds();             // 42.5
class SimulatedClock : public Clock {
 public:
  absl::Time Now() override { return time_.Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override {
    return time_.AwaitWithDeadline(mu, condition, deadline);
  }

  // seconds returns the simulated seconds since the run started.
  double seconds() const;
  // AdvanceTo moves the clock to `seconds` when that is later than now (it
  // never goes back) and wakes the waiters whose deadline it reaches. Do not
  // call it while holding a mutex someone waits on with AwaitWithDeadline.
  void AdvanceTo(double seconds);

 private:
  // Held across the move of `time_` too, so two AdvanceTo calls cannot
  // interleave and move `time_` backwards.
  mutable absl::Mutex mu_;
  double seconds_ ABSL_GUARDED_BY(mu_) = 0;
  // Keeps the waiters and wakes them; moved only under mu_.
  FakeClock time_{absl::UnixEpoch()};
};

}  // namespace shoal::simulation

#endif  // SHOAL_SIMULATION_SIMULATED_CLOCK_H_
