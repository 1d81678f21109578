// FakeClientProxy: an in-process ClientProxy whose behaviour a test scripts
// (answer with an update, answer late, never answer, fail). In a securely
// aggregated round it is a real participant: the scripted result is encoded
// and masked by secagg::SecAggParticipant.
#ifndef SHOAL_TESTS_FAKE_CLIENT_PROXY_H_
#define SHOAL_TESTS_FAKE_CLIENT_PROXY_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "secagg/participant.h"
#include "server/client_proxy.h"

namespace shoal::testing {

class FakeClientProxy : public ClientProxy {
 public:
  // Behaviour maps the global model to this client's answer; an empty
  // optional means the client never answers.
  using Behaviour = std::function<std::optional<absl::StatusOr<FitRes>>(const FitIns&)>;

  // The answer comes `delay` after the task, on `clock`.
  FakeClientProxy(std::string id, Behaviour behaviour, absl::Duration delay = absl::ZeroDuration(),
                  Clock* clock = Clock::Real())
      : id_(std::move(id)), behaviour_(std::move(behaviour)), delay_(delay), clock_(clock) {}
  ~FakeClientProxy() override {
    for (auto& t : threads_) t.join();
  }

  const std::string& id() const override { return id_; }
  // Declare sets what declared_examples() returns (what a device declares
  // when it joins).
  void Declare(DeclaredExamples declared) {
    absl::MutexLock lock(&mu_);
    declared_ = declared;
  }
  DeclaredExamples declared_examples() const override {
    absl::MutexLock lock(&mu_);
    return declared_;
  }
  void Fit(const FitIns& ins, absl::Time deadline, FitResultHandler handler) override {
    std::optional<absl::StatusOr<FitRes>> answer = behaviour_(ins);
    if (!answer) return;
    if (ins.secagg != nullptr && answer->ok()) {
      *answer = participant_.MaskedResult(*ins.secagg, **answer);
    }
    threads_.emplace_back([this, answer = *std::move(answer), handler]() mutable {
      if (delay_ > absl::ZeroDuration()) clock_->SleepFor(delay_);
      absl::Status verdict = handler(std::move(answer));
      absl::MutexLock lock(&mu_);
      verdicts_.push_back(verdict);
    });
  }
  void SecAgg(const v1::SecAggServerMessage& message, uint32_t round, absl::Time deadline,
              SecAggResultHandler handler) override {
    if (secagg_silent_ && message.stage_case() == secagg_silent_stage_) return;
    absl::StatusOr<v1::SecAggClientMessage> answer = participant_.Handle(message);
    threads_.emplace_back([this, answer = std::move(answer), handler]() mutable {
      absl::Status verdict = handler(std::move(answer));
      absl::MutexLock lock(&mu_);
      verdicts_.push_back(verdict);
    });
  }
  // GoSilentAt makes the client vanish when a secure-aggregation message of
  // this stage arrives (it never answers it nor anything after).
  void GoSilentAt(v1::SecAggServerMessage::StageCase stage) {
    secagg_silent_ = true;
    secagg_silent_stage_ = stage;
  }
  void Evaluate(const EvaluateIns&, absl::Time, EvaluateResultHandler) override {}
  void Cancel() override {}
  void Shutdown(const std::string&, int64_t version) override {
    absl::MutexLock lock(&mu_);
    final_version_ = version;
  }

  // Verdicts the server returned for this client's results, in order.
  std::vector<absl::Status> verdicts() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    absl::MutexLock lock(&mu_);
    return verdicts_;
  }
  int64_t final_version() {
    absl::MutexLock lock(&mu_);
    return final_version_;
  }

 private:
  const std::string id_;
  Behaviour behaviour_;
  absl::Duration delay_;
  Clock* const clock_;
  std::vector<std::thread> threads_;
  secagg::SecAggParticipant participant_;
  bool secagg_silent_ = false;
  v1::SecAggServerMessage::StageCase secagg_silent_stage_ = v1::SecAggServerMessage::STAGE_NOT_SET;
  mutable absl::Mutex mu_;
  std::vector<absl::Status> verdicts_ ABSL_GUARDED_BY(mu_);
  DeclaredExamples declared_ ABSL_GUARDED_BY(mu_);
  int64_t final_version_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_FAKE_CLIENT_PROXY_H_
