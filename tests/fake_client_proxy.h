// FakeClientProxy: an in-process ClientProxy whose behaviour a test scripts
// (answer with an update, answer late, never answer, fail).
#ifndef SHOAL_TESTS_FAKE_CLIENT_PROXY_H_
#define SHOAL_TESTS_FAKE_CLIENT_PROXY_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/client_proxy.h"

namespace shoal::testing {

class FakeClientProxy : public ClientProxy {
 public:
  // Behaviour maps the global model to this client's answer; an empty
  // optional means the client never answers.
  using Behaviour = std::function<std::optional<absl::StatusOr<FitRes>>(const FitIns&)>;

  FakeClientProxy(std::string id, Behaviour behaviour,
                  absl::Duration delay = absl::ZeroDuration())
      : id_(std::move(id)), behaviour_(std::move(behaviour)), delay_(delay) {}
  ~FakeClientProxy() override {
    for (auto& t : threads_) t.join();
  }

  const std::string& id() const override { return id_; }
  void Fit(const FitIns& ins, absl::Time deadline, FitResultHandler handler) override {
    std::optional<absl::StatusOr<FitRes>> answer = behaviour_(ins);
    if (!answer) return;
    threads_.emplace_back([this, answer = *std::move(answer), handler]() mutable {
      absl::SleepFor(delay_);
      absl::Status verdict = handler(std::move(answer));
      absl::MutexLock lock(&mu_);
      verdicts_.push_back(verdict);
    });
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
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::vector<absl::Status> verdicts_ ABSL_GUARDED_BY(mu_);
  int64_t final_version_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_FAKE_CLIENT_PROXY_H_
