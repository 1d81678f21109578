// Issue 17.4: the device's caps on a round of training. The time budget
// stops training early and reports what was trained; the memory budget
// lowers the batch size so that the round's measured memory stays within
// it; a may-train check from a command or a pause file says "not now" with
// a reason.
#include <ATen/CPUGeneratorImpl.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cpu_memory.h"
#include "client/local_client.h"
#include "client/may_train.h"
#include "client/model.h"
#include "client/trainer.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/status.h"
#include "common/types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_testing.h"
#include "tests/testing.h"

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

// TickingClock moves one second forward each time it is read, so a time
// budget of K seconds allows an exact number of steps on any machine.
class TickingClock : public Clock {
 public:
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    now_ += absl::Seconds(1);
    return now_;
  }
  bool AwaitWithDeadline(absl::Mutex*, const absl::Condition& condition, absl::Time) override {
    return condition.Eval();
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1000);
};

Dataset Data(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return Dataset{at::randn({n, 1, 28, 28}, gen), at::randint(0, 10, {n}, gen, at::kLong)};
}

v1::FitConfig Config(uint32_t epochs, uint32_t batch) {
  v1::FitConfig config;
  config.set_local_epochs(epochs);
  config.set_batch_size(batch);
  config.set_learning_rate(0.05);
  config.set_momentum(0.9);
  return config;
}

Trainer MustTrainer(const TrainerOptions& options) {
  absl::StatusOr<Trainer> trainer = Trainer::Create(options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return *std::move(trainer);
}

TEST(ResourceCapsTest, TimeBudgetStopsTrainingAndReportsTheStepsAndExamplesTrained) {
  TickingClock clock;
  TrainerOptions options;
  options.time_budget = absl::Seconds(5);
  options.clock = &clock;
  LocalClient local(MustCreate("2nn", 1), MustTrainer(options), Data(100, 1), Data(10, 2));
  const Parameters global = local.model().GetParameters().Clone();
  // 10 steps an epoch; the clock reads 1 s later at each step after the
  // first, so the budget allows 5 of them.
  absl::StatusOr<FitRes> res = local.Fit(global, Config(2, 10), 1);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(std::get<int64_t>(res->metrics.at(kStepsMetric)), 5);
  EXPECT_EQ(res->num_examples, 50);
  EXPECT_EQ(std::get<int64_t>(res->metrics.at(kStoppedEarlyMetric)), 1);
  EXPECT_TRUE(std::isfinite(MetricAsDouble(res->metrics.at(kTrainLossMetric))));
  EXPECT_EQ(res->metrics.count(kBatchSizeMetric), 0u);
  bool moved = false;
  for (const at::Tensor& t : res->update.tensors()) moved = moved || t.abs().sum().item<double>() > 0;
  EXPECT_TRUE(moved);
}

TEST(ResourceCapsTest, TimeBudgetEndingAtAnEpochsStartKeepsTheFullEpochsFigures) {
  TickingClock clock;
  TrainerOptions options;
  options.time_budget = absl::Seconds(3);
  options.clock = &clock;
  Trainer trainer = MustTrainer(options);
  std::unique_ptr<Model> model = MustCreate("2nn", 3);
  const Parameters global = model->GetParameters().Clone();
  // 3 steps an epoch: epoch 0 runs whole (reads at 2, 3 s), the first step
  // of epoch 1 finds the budget spent (4 s).
  absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, Data(30, 3), Config(3, 10), 1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->steps, 3);
  EXPECT_EQ(fit->num_examples, 30);
  EXPECT_TRUE(fit->stopped_early);
  EXPECT_TRUE(std::isfinite(fit->train_loss));
  EXPECT_GT(fit->train_loss, 0);
}

TEST(ResourceCapsTest, AnUnreachedTimeBudgetChangesNothing) {
  FakeClock clock;  // never moves
  TrainerOptions capped;
  capped.time_budget = absl::Seconds(1);
  capped.clock = &clock;
  const Dataset data = Data(64, 4);
  auto fit = [&](const TrainerOptions& options) {
    std::unique_ptr<Model> model = MustCreate("2nn", 4);
    const Parameters global = model->GetParameters().Clone();
    absl::StatusOr<FitOutcome> out = MustTrainer(options).Fit(*model, global, data, Config(2, 16), 1);
    EXPECT_TRUE(out.ok()) << out.status();
    return *std::move(out);
  };
  const FitOutcome a = fit(TrainerOptions{});
  const FitOutcome b = fit(capped);
  EXPECT_FALSE(b.stopped_early);
  EXPECT_EQ(a.steps, b.steps);
  for (size_t i = 0; i < a.update.size(); ++i) {
    EXPECT_TRUE(at::equal(a.update.tensor(i), b.update.tensor(i))) << a.update.name(i);
  }
}

// What a Fit adds to the CPU memory held before it, at its peak.
struct Measured {
  FitOutcome outcome;
  int64_t peak = 0;
};
absl::StatusOr<Measured> MeasuredFit(const TrainerOptions& options, const Dataset& data,
                                     uint32_t batch) {
  SHOAL_ASSIGN_OR_RETURN(Trainer trainer, Trainer::Create(options));
  std::unique_ptr<Model> model = MustCreate("cnn", 5);
  const Parameters global = model->GetParameters().Clone();
  InstallCpuMemoryMeter();
  const int64_t held = CpuBytesInUse();
  ResetCpuPeakBytes();
  Measured m;
  SHOAL_ASSIGN_OR_RETURN(m.outcome, trainer.Fit(*model, global, data, Config(1, batch), 1));
  m.peak = CpuPeakBytes() - held;
  return m;
}

TEST(ResourceCapsTest, MemoryBudgetLowersTheBatchSizeAndTheRoundStaysWithinIt) {
  const Dataset data = Data(512, 5);
  absl::StatusOr<Measured> free = MeasuredFit(TrainerOptions{}, data, 256);
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_EQ(free->outcome.batch_size, 256);

  TrainerOptions capped;
  capped.memory_budget_bytes = free->peak / 2;
  absl::StatusOr<Measured> tight = MeasuredFit(capped, data, 256);
  ASSERT_TRUE(tight.ok()) << tight.status();
  EXPECT_LT(tight->outcome.batch_size, 256);
  EXPECT_GE(tight->outcome.batch_size, 1);
  EXPECT_LE(tight->peak, capped.memory_budget_bytes)
      << "batch " << tight->outcome.batch_size << ", unconstrained peak " << free->peak;
  EXPECT_EQ(tight->outcome.num_examples, 512);
  EXPECT_EQ(tight->outcome.steps,
            (512 + tight->outcome.batch_size - 1) / tight->outcome.batch_size);

  // A budget the round fits in changes nothing: the probe leaves no trace
  // in the model, the generator or the update.
  TrainerOptions roomy;
  roomy.memory_budget_bytes = free->peak * 4;
  absl::StatusOr<Measured> same = MeasuredFit(roomy, data, 256);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->outcome.batch_size, 256);
  for (size_t i = 0; i < free->outcome.update.size(); ++i) {
    EXPECT_TRUE(at::equal(free->outcome.update.tensor(i), same->outcome.update.tensor(i)))
        << free->outcome.update.name(i);
  }
}

TEST(ResourceCapsTest, MemoryBudgetBelowOneExampleIsRefusedNamingTheBudget) {
  TrainerOptions options;
  options.memory_budget_bytes = 1000;
  absl::StatusOr<Measured> fit = MeasuredFit(options, Data(8, 6), 4);
  ASSERT_FALSE(fit.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(fit.status())) << fit.status();
  EXPECT_THAT(std::string(fit.status().message()), HasSubstr("memory budget of 0.0 MB"));

  options.memory_budget_bytes = -1;
  EXPECT_FALSE(Trainer::Create(options).ok());
  TrainerOptions zero_time;
  zero_time.time_budget = absl::ZeroDuration();
  EXPECT_FALSE(Trainer::Create(zero_time).ok());
}

TEST(MayTrainTest, CommandExitStatusDecidesAndItsFirstLineIsTheReason) {
  EXPECT_TRUE(MayTrainCommand("exit 0")().ok());
  absl::Status no = MayTrainCommand("printf '\\n  on battery (12%%)\\nmore\\n'; exit 3")();
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.message(), "  on battery (12%)");
  absl::Status silent = MayTrainCommand("exit 7")();
  EXPECT_EQ(silent.message(), "the may-train command exited with status 7");
  // Bytes that are not printable ASCII do not reach the server as they are.
  absl::Status odd = MayTrainCommand("printf 'metered\\001\\377link'; exit 1")();
  EXPECT_EQ(odd.message(), "metered??link");
}

TEST(MayTrainTest, ACommandThatDoesNotAnswerIsKilledAndDeclines) {
  testing::TempDir dir;
  const std::string pid_file = dir.File("pid");
  absl::Status hung = MayTrainCommand(absl::StrCat("echo $$ > ", pid_file, "; exec sleep 30"),
                                      absl::Milliseconds(300))();
  ASSERT_FALSE(hung.ok());
  EXPECT_THAT(std::string(hung.message()), HasSubstr("no answer within 300ms"));
  absl::StatusOr<std::string> pid_text = ReadFile(pid_file);
  ASSERT_TRUE(pid_text.ok()) << pid_text.status();
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid_text), &pid)) << *pid_text;
  // Killed and reaped: the process no longer exists.
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

// The time limit holds however the command behaves: one that closes its
// output and goes on is still cut off, and one that answers yes but leaves
// something running in the background with the pipe open is heard at once.
TEST(MayTrainTest, TheLimitHoldsWhateverTheCommandDoesWithItsOutput) {
  absl::Status quiet =
      MayTrainCommand("exec >/dev/null 2>&1; sleep 30", absl::Milliseconds(300))();
  EXPECT_THAT(std::string(quiet.message()), HasSubstr("no answer within 300ms"));
  EXPECT_TRUE(MayTrainCommand("sleep 30 & exit 0", absl::Seconds(20))().ok());
  EXPECT_TRUE(MayTrainCommand("exit 0", absl::InfiniteDuration())().ok());
}

TEST(MayTrainTest, PauseFileDeclinesWhileItExistsWithItsFirstLine) {
  testing::TempDir dir;
  const std::string path = dir.File("pause");
  std::function<absl::Status()> check = PauseWhileFileExists(path);
  EXPECT_TRUE(check().ok());
  ASSERT_TRUE(WriteFileAtomically(path, "charging needed\nsecond line\n").ok());
  EXPECT_EQ(check().message(), "charging needed");
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(check().message(), path + " exists");
  // Both: the pause file speaks first; with it gone, the command decides.
  std::function<absl::Status()> both = BothMayTrain(check, MayTrainCommand("echo busy; exit 1"));
  EXPECT_EQ(both().message(), path + " exists");
  std::filesystem::remove(path);
  EXPECT_EQ(both().message(), "busy");
  EXPECT_TRUE(BothMayTrain(check, nullptr)().ok());
  // A FIFO is not read (it would block): its name is the reason.
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  EXPECT_EQ(check().message(), path + " exists");
}

}  // namespace
}  // namespace shoal::client
