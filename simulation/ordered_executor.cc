#include "simulation/ordered_executor.h"

#include <utility>

namespace shoal::simulation {

OrderedExecutor::OrderedExecutor(int workers, int lookahead,
                                 std::function<void(int worker)> init)
    : workers_(workers < 1 ? 1 : workers), lookahead_(lookahead < 0 ? 0 : lookahead) {
  threads_.reserve(static_cast<size_t>(workers_));
  for (int w = 0; w < workers_; ++w) {
    threads_.emplace_back([this, w, init] {
      if (init) init(w);
      WorkerLoop(w);
    });
  }
}

OrderedExecutor::~OrderedExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void OrderedExecutor::Submit(Work work) {
  absl::MutexLock lock(&mu_);
  queue_.emplace_back(next_submit_++, std::move(work));
}

void OrderedExecutor::WaitIdle() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return next_deliver_ == next_submit_ && !delivering_;
  };
  mu_.Await(absl::Condition(&idle));
}

void OrderedExecutor::WorkerLoop(int worker) {
  // Known before any thread starts (threads_ is still growing then).
  const uint64_t window = static_cast<uint64_t>(lookahead_ + workers_);
  while (true) {
    std::pair<uint64_t, Work> job;
    {
      absl::MutexLock lock(&mu_);
      // A job may start when it is within the window of undelivered results.
      auto ready = [this, window]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (queue_.empty()) return stopping_;
        return queue_.front().first < next_deliver_ + window;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::function<void()> delivery = job.second(worker);
    {
      absl::MutexLock lock(&mu_);
      done_.emplace(job.first, std::move(delivery));
    }
    Deliver();
  }
}

void OrderedExecutor::Deliver() {
  while (true) {
    std::function<void()> delivery;
    {
      absl::MutexLock lock(&mu_);
      if (delivering_) return;  // the thread delivering will pick ours up
      auto it = done_.find(next_deliver_);
      if (it == done_.end()) return;
      delivery = std::move(it->second);
      done_.erase(it);
      delivering_ = true;
    }
    if (delivery) delivery();
    absl::MutexLock lock(&mu_);
    delivering_ = false;
    ++next_deliver_;
  }
}

}  // namespace shoal::simulation
