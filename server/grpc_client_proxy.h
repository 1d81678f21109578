// GrpcClientProxy: a ClientProxy for a device connected over gRPC. The
// server never dials a device, so the proxy is a mailbox: the Coordinator
// posts a task, the device's long poll (Federation.Poll) takes it, and the
// device's upload (SubmitFit / SubmitEvaluate / SubmitSecAgg) completes it.
#ifndef SHOAL_SERVER_GRPC_CLIENT_PROXY_H_
#define SHOAL_SERVER_GRPC_CLIENT_PROXY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/client_proxy.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// Thread-safe.
class GrpcClientProxy : public ClientProxy {
 public:
  explicit GrpcClientProxy(std::string id) : id_(std::move(id)) {}

  const std::string& id() const override { return id_; }
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

  // What an open fit task was sent: the global model, the strategy's
  // auxiliary tensors (null when none), and whether the round is securely
  // aggregated (the answer is then a masked input, nothing else).
  struct FitTaskInputs {
    std::shared_ptr<const Parameters> global;
    std::shared_ptr<const Parameters> aux;
    bool secure = false;
  };
  // OpenFitTask returns the inputs of the open fit task `task_id`, or
  // FailedPrecondition when there is none (timed out, replaced, unknown).
  absl::StatusOr<FitTaskInputs> OpenFitTask(const std::string& task_id) const;

  // CompleteFit / CompleteEvaluate deliver the device's result for
  // `task_id` and return the Coordinator's verdict.
  absl::Status CompleteFit(const std::string& task_id, absl::StatusOr<FitRes> res);
  absl::Status CompleteEvaluate(const std::string& task_id,
                                absl::StatusOr<EvaluateRes> res);
  absl::Status CompleteSecAgg(const std::string& task_id,
                              absl::StatusOr<v1::SecAggClientMessage> message);

 private:
  struct PendingTask {
    v1::Task task;
    FitTaskInputs fit_inputs;  // fit tasks only
    FitResultHandler fit_handler;
    EvaluateResultHandler evaluate_handler;
    SecAggResultHandler secagg_handler;
  };
  std::string NewTaskId(const char* kind, uint32_t round)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string id_;
  mutable absl::Mutex mu_;
  std::optional<PendingTask> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::Task> shutdown_ ABSL_GUARDED_BY(mu_);
  uint64_t next_task_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_GRPC_CLIENT_PROXY_H_
