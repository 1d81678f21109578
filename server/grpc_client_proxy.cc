#include "server/grpc_client_proxy.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/random.h"

namespace shoal {
namespace {

// Task IDs are unguessable enough to stop a confused client from answering
// another round's task, and readable in logs.
std::string RandomSuffix() {
  static std::atomic<uint64_t> counter{static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()))};
  return absl::StrCat(absl::Hex(SplitMix64(counter.fetch_add(1)), absl::kZeroPad16));
}

void FillVersion(int64_t version, v1::ModelVersion* out) { out->set_version(version); }

}  // namespace

std::string GrpcClientProxy::NewTaskId(const char* kind, uint32_t round) {
  return absl::StrCat(kind, "-r", round, "-", ++next_task_, "-", RandomSuffix());
}

void GrpcClientProxy::Fit(const FitIns& ins, absl::Time deadline,
                          FitResultHandler handler) {
  absl::MutexLock lock(&mu_);
  PendingTask p;
  p.task.set_task_id(NewTaskId("fit", ins.round));
  v1::FitTask* fit = p.task.mutable_fit();
  fit->set_round(ins.round);
  FillVersion(ins.model_version, fit->mutable_model());
  *fit->mutable_config() = ins.config;
  fit->set_has_aux(ins.aux != nullptr);
  if (ins.secagg != nullptr) *fit->mutable_secagg() = *ins.secagg;
  p.fit_inputs = {ins.parameters, ins.aux, ins.secagg != nullptr};
  p.fit_handler = std::move(handler);
  pending_ = std::move(p);
}

void GrpcClientProxy::Evaluate(const EvaluateIns& ins, absl::Time deadline,
                               EvaluateResultHandler handler) {
  absl::MutexLock lock(&mu_);
  PendingTask p;
  p.task.set_task_id(NewTaskId("eval", ins.round));
  v1::EvaluateTask* eval = p.task.mutable_evaluate();
  eval->set_round(ins.round);
  FillVersion(ins.model_version, eval->mutable_model());
  *eval->mutable_config() = ins.config;
  p.evaluate_handler = std::move(handler);
  pending_ = std::move(p);
}

void GrpcClientProxy::SecAgg(const v1::SecAggServerMessage& message, uint32_t round,
                             absl::Time deadline, SecAggResultHandler handler) {
  absl::MutexLock lock(&mu_);
  PendingTask p;
  p.task.set_task_id(NewTaskId("secagg", round));
  p.task.mutable_secagg()->set_round(round);
  *p.task.mutable_secagg()->mutable_message() = message;
  p.secagg_handler = std::move(handler);
  pending_ = std::move(p);
}

void GrpcClientProxy::Cancel() {
  absl::MutexLock lock(&mu_);
  pending_.reset();
}

void GrpcClientProxy::Shutdown(const std::string& reason, int64_t final_version) {
  absl::MutexLock lock(&mu_);
  v1::Task task;
  task.set_task_id(absl::StrCat("shutdown-", RandomSuffix()));
  task.mutable_shutdown()->set_reason(reason);
  FillVersion(final_version, task.mutable_shutdown()->mutable_final_model());
  shutdown_ = std::move(task);
  pending_.reset();
}

v1::Task GrpcClientProxy::NextTask(absl::Duration max_wait) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_.has_value() || shutdown_.has_value();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), max_wait);
  if (shutdown_) return *shutdown_;
  if (pending_) return pending_->task;
  v1::Task wait;
  wait.mutable_wait()->set_retry_after_ms(0);  // poll again right away
  return wait;
}

absl::StatusOr<GrpcClientProxy::FitTaskInputs> GrpcClientProxy::OpenFitTask(
    const std::string& task_id) const {
  absl::MutexLock lock(&mu_);
  if (!pending_ || pending_->task.task_id() != task_id || !pending_->task.has_fit()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "client '", id_, "' has no open fit task '", task_id,
        "' (it timed out, was replaced, or never existed)"));
  }
  return pending_->fit_inputs;
}

absl::Status GrpcClientProxy::CompleteFit(const std::string& task_id,
                                          absl::StatusOr<FitRes> res) {
  FitResultHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (!pending_ || pending_->task.task_id() != task_id || !pending_->task.has_fit()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "client '", id_, "' has no open fit task '", task_id,
          "' (it timed out, was replaced, or never existed)"));
    }
    handler = std::move(pending_->fit_handler);
    pending_.reset();
  }
  // Outside the lock: the handler folds the update, which takes a while.
  return handler(std::move(res));
}

absl::Status GrpcClientProxy::CompleteEvaluate(const std::string& task_id,
                                               absl::StatusOr<EvaluateRes> res) {
  EvaluateResultHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (!pending_ || pending_->task.task_id() != task_id ||
        !pending_->task.has_evaluate()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "client '", id_, "' has no open evaluate task '", task_id, "'"));
    }
    handler = std::move(pending_->evaluate_handler);
    pending_.reset();
  }
  return handler(std::move(res));
}

absl::Status GrpcClientProxy::CompleteSecAgg(const std::string& task_id,
                                             absl::StatusOr<v1::SecAggClientMessage> message) {
  SecAggResultHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (!pending_ || pending_->task.task_id() != task_id || !pending_->task.has_secagg()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "client '", id_, "' has no open secure-aggregation task '", task_id, "'"));
    }
    handler = std::move(pending_->secagg_handler);
    pending_.reset();
  }
  return handler(std::move(message));
}

}  // namespace shoal
