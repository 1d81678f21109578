#include "server/grpc_client_proxy.h"

#include <atomic>
#include <random>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/quote.h"
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

const char* KindName(v1::Task::KindCase kind) {
  switch (kind) {
    case v1::Task::kFit: return "fit";
    case v1::Task::kEvaluate: return "evaluate";
    case v1::Task::kSecagg: return "secure-aggregation";
    default: return "other";
  }
}

// How long a retried upload waits for the verdict on the first one, which
// is still being counted.
constexpr absl::Duration kFirstVerdictWait = absl::Seconds(30);

}  // namespace

ServerEpoch::ServerEpoch()
    : nonce_([] {
        // The clock alone could repeat across a fast restart in a container
        // with a frozen clock; the OS's randomness does not.
        std::random_device device;
        const uint64_t bits = (uint64_t{device()} << 32) ^ device() ^
                              static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
        return absl::StrCat(absl::Hex(SplitMix64(bits), absl::kZeroPad16));
      }()) {}

std::shared_ptr<ServerEpoch> ServerEpoch::Process() {
  static const auto* epoch = new std::shared_ptr<ServerEpoch>(std::make_shared<ServerEpoch>());
  return *epoch;
}

void ServerEpoch::EnterRound(uint32_t round) {
  uint32_t seen = round_.load();
  while (round > seen && !round_.compare_exchange_weak(seen, round)) {
  }
}

GrpcClientProxy::GrpcClientProxy(std::string id, std::shared_ptr<ServerEpoch> epoch)
    : id_(std::move(id)), epoch_(epoch != nullptr ? std::move(epoch) : ServerEpoch::Process()) {}

std::string GrpcClientProxy::NewTaskId(const char* kind, uint32_t round) {
  return absl::StrCat(kind, "-r", round, "-", epoch_->nonce(), "-", ++next_task_, "-",
                      RandomSuffix());
}

GrpcClientProxy::TaskRecord* GrpcClientProxy::FindRecord(const std::string& task_id) {
  for (TaskRecord& r : recent_) {
    if (r.task_id == task_id) return &r;
  }
  return nullptr;
}

const GrpcClientProxy::TaskRecord* GrpcClientProxy::FindRecord(const std::string& task_id) const {
  for (const TaskRecord& r : recent_) {
    if (r.task_id == task_id) return &r;
  }
  return nullptr;
}

void GrpcClientProxy::Withdraw() {
  if (!pending_) return;
  if (TaskRecord* r = FindRecord(pending_->task.task_id())) {
    if (r->state == TaskRecord::State::kOpen) r->state = TaskRecord::State::kWithdrawn;
  }
  pending_.reset();
}

void GrpcClientProxy::Post(PendingTask p, uint32_t round) {
  Withdraw();
  epoch_->EnterRound(round);
  TaskRecord record;
  record.task_id = p.task.task_id();
  record.kind = p.task.kind_case();
  record.round = round;
  recent_.push_back(std::move(record));
  while (recent_.size() > kRecentTasks) recent_.pop_front();
  pending_ = std::move(p);
}

absl::Status GrpcClientProxy::NotOpen(const std::string& task_id,
                                      v1::Task::KindCase kind) const {
  const uint32_t now = epoch_->round();
  // The ID comes from the request: shown bounded and escaped.
  const std::string shown = QuoteForMessage(task_id);
  auto round_over = [&](uint32_t round) {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", round, " is over; the server is in round ", now, ": the result for task ",
        shown, " of client '", id_, "' was not counted"));
  };
  if (const TaskRecord* r = FindRecord(task_id)) {
    if (r->kind != kind) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", shown, " of client '", id_, "' is a ", KindName(r->kind),
          " task, not a ", KindName(kind), " task"));
    }
    if (r->state == TaskRecord::State::kAnswered || r->state == TaskRecord::State::kCounting) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the ", KindName(kind), " task ", shown, " of client '", id_,
          "' was answered already"));
    }
    if (r->round < now) return round_over(r->round);
    return absl::FailedPreconditionError(absl::StrCat(
        "client '", id_, "' has no open ", KindName(kind), " task ", shown,
        " (it timed out or was replaced)"));
  }
  // Not among the recent tasks: the ID itself tells which server process
  // handed it out and for which round ("fit-r3-<nonce>-...").
  const std::vector<std::string> parts = absl::StrSplit(task_id, '-');
  if (parts.size() < 3 || parts[2] != epoch_->nonce()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", shown, " was not handed out by this server process (it predates a "
        "server restart, or never existed); the result was not counted: poll for a new task"));
  }
  uint32_t round = 0;
  if (parts[1].size() > 1 && parts[1][0] == 'r' &&
      absl::SimpleAtoi(absl::string_view(parts[1]).substr(1), &round) && round < now) {
    return round_over(round);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "client '", id_, "' has no open ", KindName(kind), " task ", shown,
      " (it timed out, was replaced, or never existed)"));
}

std::optional<absl::Status> GrpcClientProxy::AnsweredLocked(const std::string& task_id) {
  auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const TaskRecord* r = FindRecord(task_id);
    return r == nullptr || r->state != TaskRecord::State::kCounting;
  };
  if (!settled()) mu_.AwaitWithTimeout(absl::Condition(&settled), kFirstVerdictWait);
  const TaskRecord* r = FindRecord(task_id);
  if (r == nullptr) return std::nullopt;
  if (r->state == TaskRecord::State::kCounting) {
    spdlog::info("client '{}' sent task '{}' again: already received (still being counted)",
                 id_, task_id);
    return absl::OkStatus();
  }
  if (r->state != TaskRecord::State::kAnswered) return std::nullopt;
  if (r->verdict.ok()) {
    spdlog::info("client '{}' sent task '{}' again: already received, not counted twice", id_,
                 task_id);
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the ", KindName(r->kind), " task '", task_id, "' of client '", id_,
      "' was answered already, and that answer was refused: ", r->verdict.message()));
}

std::optional<absl::Status> GrpcClientProxy::Answered(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  return AnsweredLocked(task_id);
}

absl::StatusOr<GrpcClientProxy::PendingTask> GrpcClientProxy::Take(const std::string& task_id,
                                                                   v1::Task::KindCase kind) {
  if (!pending_ || pending_->task.task_id() != task_id || pending_->task.kind_case() != kind) {
    return NotOpen(task_id, kind);
  }
  PendingTask p = std::move(*pending_);
  pending_.reset();
  if (TaskRecord* r = FindRecord(task_id)) r->state = TaskRecord::State::kCounting;
  return p;
}

absl::Status GrpcClientProxy::Finish(const std::string& task_id, absl::Status verdict,
                                     const absl::Status& delivered) {
  absl::MutexLock lock(&mu_);
  if (TaskRecord* r = FindRecord(task_id)) {
    r->state = TaskRecord::State::kAnswered;
    // A delivered failure (the client could not train, the upload did not
    // parse) is no result: sent again, it is refused, not "received".
    r->verdict = delivered.ok() ? verdict : delivered;
  }
  return verdict;
}

void GrpcClientProxy::Fit(const FitIns& ins, absl::Time deadline,
                          FitResultHandler handler) {
  std::shared_ptr<PollWaiter> ready;
  {
    absl::MutexLock lock(&mu_);
    PendingTask p;
    p.task.set_task_id(NewTaskId("fit", ins.round));
    v1::FitTask* fit = p.task.mutable_fit();
    fit->set_round(ins.round);
    FillVersion(ins.model_version, fit->mutable_model());
    *fit->mutable_config() = ins.config;
    fit->set_has_aux(ins.aux != nullptr);
    if (ins.secagg != nullptr) *fit->mutable_secagg() = *ins.secagg;
    p.fit_inputs = {ins.parameters, ins.aux, ins.secagg != nullptr,
                    {ins.config.frozen().begin(), ins.config.frozen().end()}};
    p.fit_handler = std::move(handler);
    Post(std::move(p), ins.round);
    ready = std::move(waiter_);
  }
  if (ready != nullptr) ready->Fire();
}

void GrpcClientProxy::Evaluate(const EvaluateIns& ins, absl::Time deadline,
                               EvaluateResultHandler handler) {
  std::shared_ptr<PollWaiter> ready;
  {
    absl::MutexLock lock(&mu_);
    PendingTask p;
    p.task.set_task_id(NewTaskId("eval", ins.round));
    v1::EvaluateTask* eval = p.task.mutable_evaluate();
    eval->set_round(ins.round);
    FillVersion(ins.model_version, eval->mutable_model());
    *eval->mutable_config() = ins.config;
    p.evaluate_handler = std::move(handler);
    Post(std::move(p), ins.round);
    ready = std::move(waiter_);
  }
  if (ready != nullptr) ready->Fire();
}

void GrpcClientProxy::SecAgg(const v1::SecAggServerMessage& message, uint32_t round,
                             absl::Time deadline, SecAggResultHandler handler) {
  std::shared_ptr<PollWaiter> ready;
  {
    absl::MutexLock lock(&mu_);
    PendingTask p;
    p.task.set_task_id(NewTaskId("secagg", round));
    p.task.mutable_secagg()->set_round(round);
    *p.task.mutable_secagg()->mutable_message() = message;
    p.secagg_handler = std::move(handler);
    Post(std::move(p), round);
    ready = std::move(waiter_);
  }
  if (ready != nullptr) ready->Fire();
}

void GrpcClientProxy::Cancel() {
  absl::MutexLock lock(&mu_);
  Withdraw();
}

void GrpcClientProxy::Shutdown(const std::string& reason, int64_t final_version) {
  std::shared_ptr<PollWaiter> ready;
  {
    absl::MutexLock lock(&mu_);
    v1::Task task;
    task.set_task_id(absl::StrCat("shutdown-", RandomSuffix()));
    task.mutable_shutdown()->set_reason(reason);
    FillVersion(final_version, task.mutable_shutdown()->mutable_final_model());
    shutdown_ = std::move(task);
    Withdraw();
    ready = std::move(waiter_);
  }
  if (ready != nullptr) ready->Fire();
}

v1::Task GrpcClientProxy::NextTask(absl::Duration max_wait) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_.has_value() || shutdown_.has_value() || wake_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), max_wait);
  wake_ = false;
  if (shutdown_) return *shutdown_;
  if (pending_) return pending_->task;
  v1::Task wait;
  wait.mutable_wait()->set_retry_after_ms(0);  // poll again right away
  return wait;
}

bool GrpcClientProxy::AwaitTask(std::shared_ptr<PollWaiter> waiter) {
  std::shared_ptr<PollWaiter> older;
  {
    absl::MutexLock lock(&mu_);
    if (pending_.has_value() || shutdown_.has_value() || wake_) return true;
    older = std::exchange(waiter_, std::move(waiter));
  }
  if (older != nullptr) older->Fire();
  return false;
}

void GrpcClientProxy::DropWaiter(const PollWaiter* waiter) {
  absl::MutexLock lock(&mu_);
  if (waiter_.get() == waiter) waiter_.reset();
}

void GrpcClientProxy::Wake() {
  std::shared_ptr<PollWaiter> ready;
  {
    absl::MutexLock lock(&mu_);
    wake_ = true;
    ready = std::move(waiter_);
  }
  if (ready != nullptr) ready->Fire();
}

absl::StatusOr<GrpcClientProxy::FitTaskInputs> GrpcClientProxy::OpenFitTask(
    const std::string& task_id) const {
  absl::MutexLock lock(&mu_);
  if (!pending_ || pending_->task.task_id() != task_id || !pending_->task.has_fit()) {
    return NotOpen(task_id, v1::Task::kFit);
  }
  return pending_->fit_inputs;
}

absl::Status GrpcClientProxy::CompleteFit(const std::string& task_id,
                                          absl::StatusOr<FitRes> res) {
  PendingTask task;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<absl::Status> again = AnsweredLocked(task_id)) return *again;
    absl::StatusOr<PendingTask> taken = Take(task_id, v1::Task::kFit);
    if (!taken.ok()) return taken.status();
    task = *std::move(taken);
  }
  // Outside the lock: the handler folds the update, which takes a while.
  const absl::Status delivered = res.ok() ? absl::OkStatus() : res.status();
  absl::Status verdict = task.fit_handler(std::move(res));
  return Finish(task_id, std::move(verdict), delivered);
}

absl::Status GrpcClientProxy::CompleteEvaluate(const std::string& task_id,
                                               absl::StatusOr<EvaluateRes> res) {
  PendingTask task;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<absl::Status> again = AnsweredLocked(task_id)) return *again;
    absl::StatusOr<PendingTask> taken = Take(task_id, v1::Task::kEvaluate);
    if (!taken.ok()) return taken.status();
    task = *std::move(taken);
  }
  const absl::Status delivered = res.ok() ? absl::OkStatus() : res.status();
  absl::Status verdict = task.evaluate_handler(std::move(res));
  return Finish(task_id, std::move(verdict), delivered);
}

absl::Status GrpcClientProxy::CompleteSecAgg(const std::string& task_id,
                                             absl::StatusOr<v1::SecAggClientMessage> message) {
  PendingTask task;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<absl::Status> again = AnsweredLocked(task_id)) return *again;
    absl::StatusOr<PendingTask> taken = Take(task_id, v1::Task::kSecagg);
    if (!taken.ok()) return taken.status();
    task = *std::move(taken);
  }
  const absl::Status delivered = message.ok() ? absl::OkStatus() : message.status();
  absl::Status verdict = task.secagg_handler(std::move(message));
  return Finish(task_id, std::move(verdict), delivered);
}

void GrpcClientProxy::Fail(const absl::Status& why) {
  std::string task_id;
  PendingTask task;
  {
    absl::MutexLock lock(&mu_);
    if (!pending_) return;
    task_id = pending_->task.task_id();
    absl::StatusOr<PendingTask> taken =
        Take(task_id, pending_->task.kind_case());
    if (!taken.ok()) return;
    task = *std::move(taken);
  }
  absl::Status verdict;
  if (task.fit_handler) verdict = task.fit_handler(why);
  if (task.evaluate_handler) verdict = task.evaluate_handler(why);
  if (task.secagg_handler) verdict = task.secagg_handler(why);
  Finish(task_id, std::move(verdict), why).IgnoreError();
}

}  // namespace shoal
