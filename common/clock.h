// Clock: where round logic reads the time and waits for a deadline. The
// Coordinator, the ClientManager, AccessControl and the secure round take
// one in their options (the real clock by default), so a test can hand in a
// FakeClock and move time itself: a deadline test then neither sleeps nor
// depends on how fast the machine is.
#ifndef SHOAL_COMMON_CLOCK_H_
#define SHOAL_COMMON_CLOCK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace shoal {

// Clock is thread-safe. Implementations must outlive everything that uses
// them.
class Clock {
 public:
  virtual ~Clock() = default;

  // Real returns the process's real clock (absl::Now, absl::Mutex waits);
  // never destroyed.
  static Clock* Real();

  virtual absl::Time Now() = 0;

  // AwaitWithDeadline waits, with `mu` held on entry and on return, until
  // `condition` holds or this clock reaches `deadline`; returns whether the
  // condition holds. Like absl::Mutex::AwaitWithDeadline, it re-evaluates
  // `condition` whenever `mu` is released by another thread.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                                 absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // SleepUntil returns once this clock reaches `deadline`.
  void SleepUntil(absl::Time deadline);
  void SleepFor(absl::Duration d) { SleepUntil(Now() + d); }
};

// FakeClock is a clock that moves only when told to (Advance), for tests
// (and under the simulator's SimulatedClock, which the simulator moves).
// Waiters whose deadline it passes wake up; nothing sleeps in real time.
// Thread-safe. Do not call Advance while holding a mutex someone waits on
// with AwaitWithDeadline: Advance takes each such mutex once to wake them.
//
// Example:
//   FakeClock clock;
//   options.clock = &clock;
//   std::thread run([&] { result = coordinator->Run(); });
//   clock.BlockUntilWaiters(1);           // the round waits for its deadline
//   clock.Advance(options.round_timeout);  // ...which passes now
//   run.join();
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1000000000)) : now_(start) {}

  absl::Time Now() override;
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override;

  // Advance moves the time forward by `d` and wakes every waiter.
  void Advance(absl::Duration d);
  // BlockUntilWaiters blocks (in real time) until at least `n` threads wait
  // on this clock, so a test knows the code under test reached its wait.
  void BlockUntilWaiters(size_t n);
  size_t waiters();

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  // Bumped by Advance; a waiter re-checks its deadline when it changes.
  // Atomic: waiters' conditions read it, and a condition takes no lock.
  std::atomic<uint64_t> generation_{0};
  // One per thread in AwaitWithDeadline, on its stack. `pins` counts the
  // Advance calls about to take `mu`: the waiter does not return (and so
  // may not destroy `mu`) until they are done with it.
  struct Waiter {
    absl::Mutex* mu;
    std::atomic<int> pins{0};
  };
  std::set<Waiter*> waiting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_COMMON_CLOCK_H_
