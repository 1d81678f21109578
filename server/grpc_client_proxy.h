// GrpcClientProxy: a ClientProxy for a device connected over gRPC. The
// server never dials a device, so the proxy is a mailbox: the Coordinator
// posts a task, the device's long poll (Federation.Poll) takes it, and the
// device's upload (SubmitFit / SubmitEvaluate / SubmitSecAgg) completes it.
#ifndef SHOAL_SERVER_GRPC_CLIENT_PROXY_H_
#define SHOAL_SERVER_GRPC_CLIENT_PROXY_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/client_proxy.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// ServerEpoch: what the proxies of one server process share. Its random
// nonce is part of every task ID, so a result for a task handed out before a
// server restart is refused, never matched to a task of the new process; and
// it knows the newest round any task was posted for (the round the server is
// in), so a late result is refused naming both rounds. Thread-safe.
class ServerEpoch {
 public:
  // A fresh random nonce.
  ServerEpoch();
  // A given nonce, for tests.
  explicit ServerEpoch(std::string nonce) : nonce_(std::move(nonce)) {}

  // Process returns the epoch shared by proxies created without one.
  static std::shared_ptr<ServerEpoch> Process();

  const std::string& nonce() const { return nonce_; }
  // EnterRound records that a task of `round` was posted (rounds only grow).
  void EnterRound(uint32_t round);
  uint32_t round() const { return round_.load(); }

 private:
  const std::string nonce_;
  std::atomic<uint32_t> round_{0};
};

// Thread-safe.
//
// Results are idempotent: the proxy remembers its recent tasks (the last
// kRecentTasks). A result for a task already answered is not counted again:
// the upload is answered OK ("already received") when the first was
// accepted, FailedPrecondition when it was refused. A result for a task
// withdrawn at the end of its round, or handed out by an earlier server
// process, is refused with FailedPrecondition ("round 2 is over; the server
// is in round 3").
// PollWaiter is a device's long poll waiting without a thread (the
// callback Poll of grpc_service.cc): GrpcClientProxy fires it once there
// is something to answer with, on the thread that made it so, never under
// the proxy's lock. It must answer with NextTask(ZeroDuration()).
class PollWaiter {
 public:
  virtual ~PollWaiter() = default;
  virtual void Fire() = 0;
};

class GrpcClientProxy : public ClientProxy {
 public:
  static constexpr size_t kRecentTasks = 32;

  // `epoch` null: the process's (ServerEpoch::Process()).
  explicit GrpcClientProxy(std::string id, std::shared_ptr<ServerEpoch> epoch = nullptr);

  const std::string& id() const override { return id_; }
  // Declare records what the device declared at its latest Join; the
  // Coordinator caps its results' num_examples at it.
  void Declare(DeclaredExamples declared) {
    absl::MutexLock lock(&mu_);
    declared_ = declared;
  }
  DeclaredExamples declared_examples() const override {
    absl::MutexLock lock(&mu_);
    return declared_;
  }
  // NoteDownloaded records the training version the device fetched last.
  void NoteDownloaded(int64_t version) { downloaded_.store(version); }
  int64_t model_version() const override { return downloaded_.load(); }
  void Fit(const FitIns& ins, absl::Time deadline, FitResultHandler handler) override;
  void Evaluate(const EvaluateIns& ins, absl::Time deadline,
                EvaluateResultHandler handler) override;
  void SecAgg(const v1::SecAggServerMessage& message, uint32_t round, absl::Time deadline,
              SecAggResultHandler handler) override;
  void Cancel() override;
  void Shutdown(const std::string& reason, int64_t final_version) override;

  // NextTask waits up to `max_wait` for a task and returns it, or a Wait
  // task. A task already handed out but not answered is handed out again (the
  // device may have restarted mid-task).
  v1::Task NextTask(absl::Duration max_wait);
  // AwaitTask is NextTask without a thread: true when NextTask would answer
  // at once (a task, a shutdown, a wake), to be called now; otherwise false,
  // and `waiter` is fired when that changes. A waiter registered before is
  // fired at once (the device polls again: its older poll answers with what
  // there is). Deadlines are the caller's.
  bool AwaitTask(std::shared_ptr<PollWaiter> waiter);
  // DropWaiter forgets `waiter` if it is the one registered (answered by
  // its deadline or cancelled), without firing it.
  void DropWaiter(const PollWaiter* waiter);
  // Wake ends a NextTask that is waiting (or the next one) at once with a
  // Wait task, so the device's poll returns with what changed (a new
  // serving version) instead of at the end of its long poll.
  void Wake();

  // What an open fit task was sent: the global model, the strategy's
  // auxiliary tensors (null when none), and whether the round is securely
  // aggregated (the answer is then a masked input, nothing else).
  struct FitTaskInputs {
    std::shared_ptr<const Parameters> global;
    std::shared_ptr<const Parameters> aux;
    bool secure = false;
    // The tensors the client does not send (FitConfig.frozen).
    std::vector<std::string> frozen;
  };
  // OpenFitTask returns the inputs of the open fit task `task_id`, or
  // FailedPrecondition when there is none (timed out, replaced, answered,
  // unknown).
  absl::StatusOr<FitTaskInputs> OpenFitTask(const std::string& task_id) const;

  // Answered returns the verdict to give an upload for `task_id` when that
  // task was answered already (OK when the first answer was accepted), so a
  // retried upload can be answered without reading it; nullopt otherwise.
  // While the first answer is still being counted it waits for its verdict.
  std::optional<absl::Status> Answered(const std::string& task_id);

  // CompleteFit / CompleteEvaluate deliver the device's result for
  // `task_id` and return the Coordinator's verdict; for a task answered
  // already, see Answered (the result is not counted again).
  absl::Status CompleteFit(const std::string& task_id, absl::StatusOr<FitRes> res);
  absl::Status CompleteEvaluate(const std::string& task_id,
                                absl::StatusOr<EvaluateRes> res);
  absl::Status CompleteSecAgg(const std::string& task_id,
                              absl::StatusOr<v1::SecAggClientMessage> message);
  // Fail answers the open task, if any, with `why` on the device's behalf
  // (it was revoked), so its round counts the failure now rather than at
  // the deadline. A task answered meanwhile is left alone.
  void Fail(const absl::Status& why);

 private:
  struct PendingTask {
    v1::Task task;
    FitTaskInputs fit_inputs;  // fit tasks only
    FitResultHandler fit_handler;
    EvaluateResultHandler evaluate_handler;
    SecAggResultHandler secagg_handler;
  };
  // What became of a task handed out recently.
  struct TaskRecord {
    enum class State { kOpen, kCounting, kAnswered, kWithdrawn };
    std::string task_id;
    v1::Task::KindCase kind;
    uint32_t round = 0;
    State state = State::kOpen;
    absl::Status verdict;  // kAnswered only
  };
  // Post makes `p` the open task (withdrawing the one before, if open).
  void Post(PendingTask p, uint32_t round) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Withdraw closes the open task unanswered (cancelled, replaced).
  void Withdraw() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TaskRecord* FindRecord(const std::string& task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const TaskRecord* FindRecord(const std::string& task_id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Take hands over the open task `task_id` of `kind` for completion (its
  // record is then kCounting), or returns why it cannot be answered.
  absl::StatusOr<PendingTask> Take(const std::string& task_id, v1::Task::KindCase kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AnsweredLocked is Answered under the lock.
  std::optional<absl::Status> AnsweredLocked(const std::string& task_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NotOpen explains why `task_id` of `kind` is not open (FailedPrecondition).
  absl::Status NotOpen(const std::string& task_id, v1::Task::KindCase kind) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Finish records the verdict on a task taken with Take and returns it;
  // `delivered` is the error the client delivered instead of a result, if any.
  absl::Status Finish(const std::string& task_id, absl::Status verdict,
                      const absl::Status& delivered);
  std::string NewTaskId(const char* kind, uint32_t round)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string id_;
  const std::shared_ptr<ServerEpoch> epoch_;
  std::atomic<int64_t> downloaded_{-1};
  mutable absl::Mutex mu_;
  std::optional<PendingTask> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<TaskRecord> recent_ ABSL_GUARDED_BY(mu_);  // oldest first
  std::optional<v1::Task> shutdown_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  // A poll waiting without a thread (AwaitTask), fired and dropped once
  // NextTask has something to answer with.
  std::shared_ptr<PollWaiter> waiter_ ABSL_GUARDED_BY(mu_);
  uint64_t next_task_ ABSL_GUARDED_BY(mu_) = 0;
  DeclaredExamples declared_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_SERVER_GRPC_CLIENT_PROXY_H_
