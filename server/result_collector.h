// ResultCollector: the one way a round waits for its clients' answers, for
// plain rounds (fit and evaluate results, server/coordinator.cc) and for
// every stage of a secure round (server/secure_round.cc).
#ifndef SHOAL_SERVER_RESULT_COLLECTOR_H_
#define SHOAL_SERVER_RESULT_COLLECTOR_H_

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace shoal {

// ResultCollectorText: what the collector says, in the words of its round
// or stage.
struct ResultCollectorText {
  std::string closed;     // an answer after WaitAndClose is refused with this
  std::string not_asked;  // an answer from a client not (or no longer) pending
  std::string late;       // the failure of a client that did not answer in time
};

// ResultCollector gathers the answers of the clients asked in one round or
// stage. Each answer is handed to `on_answer` under the collector's lock as
// it arrives, so whatever it feeds (a strategy's aggregator, a SecAgg+
// server) sees one answer at a time and needs no lock of its own. An answer
// that is an error, or that `on_answer` refuses, makes its client a
// failure. Thread-safe; kept alive (shared_ptr) by the proxies' result
// handlers, which may fire after WaitAndClose (they are then refused).
template <typename Key, typename Res>
class ResultCollector {
 public:
  // OnAnswer folds one answer in; an error refuses it, and is what the
  // client is told and what its failure says.
  using OnAnswer = std::function<absl::Status(const Key&, Res&)>;

  ResultCollector(const std::vector<Key>& asked, ResultCollectorText text, OnAnswer on_answer,
                  Clock* clock)
      : pending_(asked.begin(), asked.end()),
        text_(std::move(text)),
        on_answer_(std::move(on_answer)),
        clock_(clock) {}

  // Offer hands in `key`'s answer. Returns the verdict for the client: OK
  // when counted or when the answer was the client's own error;
  // FailedPrecondition when the collector is closed or `key` is not pending;
  // what `on_answer` said when it refused the answer.
  absl::Status Offer(const Key& key, absl::StatusOr<Res> answer) {
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::FailedPreconditionError(text_.closed);
    if (pending_.erase(key) == 0) return absl::FailedPreconditionError(text_.not_asked);
    if (!answer.ok()) {
      failures_.emplace_back(key, answer.status());
      return absl::OkStatus();  // the client's own error; nothing to refuse
    }
    absl::Status accepted = on_answer_(key, *answer);
    if (!accepted.ok()) {
      failures_.emplace_back(key, accepted);
      return accepted;
    }
    ++answered_;
    return absl::OkStatus();
  }

  // WaitAndClose waits until every asked client answered or the clock
  // reaches `deadline`, then refuses anything later. Returns the clients
  // that did not answer, which become failures (text.late).
  std::vector<Key> WaitAndClose(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto all_in = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_.empty(); };
    clock_->AwaitWithDeadline(&mu_, absl::Condition(&all_in), deadline);
    closed_ = true;
    std::vector<Key> late(pending_.begin(), pending_.end());
    for (const Key& key : late) {
      failures_.emplace_back(key, absl::DeadlineExceededError(text_.late));
    }
    return late;
  }

  size_t answered() const {
    absl::MutexLock lock(&mu_);
    return answered_;
  }
  // The failures in the order they happened; late clients last.
  std::vector<std::pair<Key, absl::Status>> failures() const {
    absl::MutexLock lock(&mu_);
    return failures_;
  }

 private:
  mutable absl::Mutex mu_;
  std::set<Key> pending_ ABSL_GUARDED_BY(mu_);
  const ResultCollectorText text_;
  OnAnswer on_answer_ ABSL_GUARDED_BY(mu_);
  Clock* const clock_;
  std::vector<std::pair<Key, absl::Status>> failures_ ABSL_GUARDED_BY(mu_);
  size_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_RESULT_COLLECTOR_H_
