#include "simulation/simulated_clock.h"

namespace shoal::simulation {

double SimulatedClock::seconds() const {
  absl::MutexLock lock(&mu_);
  return seconds_;
}

void SimulatedClock::AdvanceTo(double seconds) {
  absl::MutexLock lock(&mu_);
  if (!(seconds > seconds_)) return;
  seconds_ = seconds;
  // Exact: absl::Time differences and sums are exact in its ticks.
  time_.Advance(absl::UnixEpoch() + absl::Seconds(seconds) - time_.Now());
}

}  // namespace shoal::simulation
