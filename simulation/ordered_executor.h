// OrderedExecutor: runs jobs on a pool of worker threads and delivers their
// results in the order the jobs were submitted. The simulator trains virtual
// clients in parallel but must hand their results to the round in one fixed
// order, so that aggregation sums in the same order (and the run gives
// bit-identical weights) whatever the number of workers.
#ifndef SHOAL_SIMULATION_ORDERED_EXECUTOR_H_
#define SHOAL_SIMULATION_ORDERED_EXECUTOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace shoal::simulation {

// Thread-safe. Results are delivered one at a time, in submission order, on
// whichever worker thread completes the next one; a delivery may block the
// pool's progress, so it should be short (folding a result into an
// aggregate is). At most `workers + lookahead` results wait for delivery at
// once: a worker does not start job s until job s - lookahead - workers has
// been delivered, which bounds memory to O(workers) results however long one
// job takes.
class OrderedExecutor {
 public:
  // Work runs on worker `worker` (0 <= worker < workers) and returns the
  // delivery, run later in submission order (may be empty).
  using Work = std::function<std::function<void()>(int worker)>;

  // `init` runs once on each worker thread before its first job (e.g. to
  // set LibTorch's per-thread settings); may be empty.
  OrderedExecutor(int workers, int lookahead, std::function<void(int worker)> init);
  // Joins the workers after running every submitted job.
  ~OrderedExecutor();

  OrderedExecutor(const OrderedExecutor&) = delete;
  OrderedExecutor& operator=(const OrderedExecutor&) = delete;

  // Submit queues `work`; it returns at once.
  void Submit(Work work);
  // WaitIdle blocks until every job submitted so far has been delivered.
  void WaitIdle();

  int workers() const { return workers_; }

 private:
  void WorkerLoop(int worker);
  // Deliver runs the deliveries that are ready, in order, while no other
  // thread is delivering.
  void Deliver();

  const int workers_;
  const int lookahead_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<uint64_t, Work>> queue_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::function<void()>> done_ ABSL_GUARDED_BY(mu_);
  uint64_t next_submit_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_deliver_ ABSL_GUARDED_BY(mu_) = 0;
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace shoal::simulation

#endif  // SHOAL_SIMULATION_ORDERED_EXECUTOR_H_
