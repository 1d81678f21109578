#include "common/clock.h"

#include <vector>

namespace shoal {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override {
    return mu->AwaitWithDeadline(condition, deadline);
  }
};

}  // namespace

Clock* Clock::Real() {
  static Clock* const real = new RealClock();
  return real;
}

void Clock::SleepUntil(absl::Time deadline) {
  static const bool kNever = false;
  absl::Mutex mu;
  absl::MutexLock lock(&mu);
  AwaitWithDeadline(&mu, absl::Condition(&kNever), deadline);
}

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

bool FakeClock::AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                                  absl::Time deadline) {
  Waiter self{mu};
  {
    absl::MutexLock lock(&mu_);
    waiting_.insert(&self);
  }
  bool holds = false;
  while (true) {
    if (condition.Eval()) {
      holds = true;
      break;
    }
    // The generation is read before the time: an Advance in between bumps
    // it after moving the time, so the wait below cannot miss that Advance.
    const uint64_t seen = generation_.load();
    if (Now() >= deadline) break;
    auto woken = [&condition, seen, this] {
      return condition.Eval() || generation_.load() != seen;
    };
    mu->Await(absl::Condition(&woken));
  }
  {
    absl::MutexLock lock(&mu_);
    waiting_.erase(&self);
  }
  // An Advance that pinned this waiter still takes `mu` once; let it (Await
  // releases `mu`), so the caller may destroy `mu` once this returns.
  auto unpinned = [&self] { return self.pins.load() == 0; };
  mu->Await(absl::Condition(&unpinned));
  return holds;
}

void FakeClock::Advance(absl::Duration d) {
  std::vector<Waiter*> pinned;
  {
    absl::MutexLock lock(&mu_);
    now_ += d;
    generation_.fetch_add(1);
    for (Waiter* w : waiting_) {
      w->pins.fetch_add(1);
      pinned.push_back(w);
    }
  }
  // Releasing a waiter's mutex makes absl re-evaluate its condition. mu_ is
  // not held here: waiters take mu_ while holding their own mutex.
  for (Waiter* w : pinned) {
    absl::Mutex* mu = w->mu;
    mu->Lock();
    w->pins.fetch_sub(1);  // last touch of `w`: its thread may return after Unlock
    mu->Unlock();
  }
}

void FakeClock::BlockUntilWaiters(size_t n) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_.size() >= n; };
  mu_.Await(absl::Condition(&enough));
}

size_t FakeClock::waiters() {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

}  // namespace shoal
