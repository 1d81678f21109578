// RunQueue's bookkeeping, without training: what is kept on disk, what a
// submission refuses, cancelling a queued run, damaged state. Training runs
// over real processes are in serve_integration_test.cc.
#include "server/run_queue.h"

#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "strategies/registry.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

// A preparer that accepts any config without a "bad" key and names the
// key otherwise, as the real one (cli/serve_command.cc) does.
absl::StatusOr<PreparedRun> Prepare(const std::string& config, const std::string& source,
                                    const std::string& id, const std::string& dir) {
  if (config.find("\"bad\"") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": unknown key 'bad'"));
  }
  PreparedRun run;
  SHOAL_ASSIGN_OR_RETURN(run.strategy, CreateStrategy("fedavg", nlohmann::json::object(), {}));
  run.options.coordinator.num_rounds = 3;
  return run;
}

std::unique_ptr<RunQueue> Open(const std::string& dir, size_t max_queued = 100) {
  RunQueueOptions options;
  options.dir = dir;
  options.prepare = Prepare;
  options.max_queued = max_queued;
  absl::StatusOr<std::unique_ptr<RunQueue>> queue = RunQueue::Open(std::move(options));
  EXPECT_TRUE(queue.ok()) << queue.status();
  return queue.ok() ? *std::move(queue) : nullptr;
}

TEST(RunQueueTest, ASubmittedRunIsKeptOnDiskAndFoundAgainAfterAReopen) {
  testing::TempDir dir;
  {
    auto queue = Open(dir.path());
    absl::StatusOr<RunInfo> run = queue->Submit(R"({"name": "fault model"})", "a.json");
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->id, "fault-model-1");
    EXPECT_EQ(run->state, RunState::kQueued);
    EXPECT_EQ(run->rounds_planned, 3u);
    EXPECT_EQ(run->strategy, "fedavg");
    absl::StatusOr<std::string> kept = ReadFile(dir.File("runs/fault-model-1/config.json"));
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(*kept, R"({"name": "fault model"})");
  }
  auto queue = Open(dir.path());
  std::vector<RunInfo> runs = queue->List();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].id, "fault-model-1");
  EXPECT_EQ(runs[0].state, RunState::kQueued);
  absl::StatusOr<RunInfo> next = queue->Submit(R"({"name": "x"})", "b.json");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->id, "x-2");  // numbers go on across restarts
  absl::StatusOr<std::vector<std::string>> log = queue->Logs("x-2", 10);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 1u);
  EXPECT_THAT((*log)[0], HasSubstr("submitted (b.json): 3 rounds of fedavg"));
}

TEST(RunQueueTest, ABadSubmissionIsRefusedByNameAndNothingIsQueued) {
  testing::TempDir dir;
  RunQueueOptions options;
  auto queue = Open(dir.path(), /*max_queued=*/1);
  auto refused = [&](const std::string& config) {
    absl::StatusOr<RunInfo> run = queue->Submit(config, "c.json");
    return run.ok() ? std::string("queued") : std::string(run.status().ToString());
  };
  EXPECT_THAT(refused(R"({"name": "r", "bad": 1})"), HasSubstr("c.json: unknown key 'bad'"));
  EXPECT_THAT(refused(R"({"name": )"), HasSubstr("c.json"));
  EXPECT_THAT(refused("[1, 2]"), HasSubstr("not a JSON object"));
  EXPECT_THAT(refused(std::string(size_t{2} << 20, ' ')), HasSubstr("at most"));
  EXPECT_TRUE(queue->List().empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("runs")));
  ASSERT_TRUE(queue->Submit(R"({"name": "r"})", "c.json").ok());
  EXPECT_THAT(refused(R"({"name": "r"})"), HasSubstr("RESOURCE_EXHAUSTED"));
}

TEST(RunQueueTest, AQueuedRunIsCancelledAtOnceAndOnlyOnce) {
  testing::TempDir dir;
  auto queue = Open(dir.path());
  ASSERT_TRUE(queue->Submit(R"({"name": "r"})", "c.json").ok());
  absl::StatusOr<RunInfo> cancelled = queue->Cancel("r-1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, RunState::kCancelled);
  EXPECT_TRUE(cancelled->cancel_requested);
  EXPECT_TRUE(absl::IsFailedPrecondition(queue->Cancel("r-1").status()));
  EXPECT_TRUE(absl::IsNotFound(queue->Cancel("r-9").status()));
  EXPECT_TRUE(absl::IsNotFound(queue->Get("r-9").status()));
  EXPECT_TRUE(absl::IsNotFound(queue->ModelsDir("r-9").status()));
  // Kept as cancelled.
  auto reopened = Open(dir.path());
  absl::StatusOr<RunInfo> kept = reopened->Get("r-1");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->state, RunState::kCancelled);
}

TEST(RunQueueTest, ADamagedRunFileIsSkippedLeftAsItIsAndItsFolderNeverReused) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.File("runs/r-1"));
  const std::string damaged = R"({"format": 1, "id": "r-1", "seq": )";
  ASSERT_TRUE(WriteFileAtomically(dir.File("runs/r-1/run.json"), damaged).ok());
  auto queue = Open(dir.path());
  EXPECT_TRUE(queue->List().empty());
  absl::StatusOr<RunInfo> run = queue->Submit(R"({"name": "r"})", "c.json");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->id, "r-2");
  EXPECT_EQ(*ReadFile(dir.File("runs/r-1/run.json")), damaged);
}

TEST(RunQueueTest, AScheduleSubmitsByTimeButNeverTwoOfItsRunsAtOnce) {
  testing::TempDir dir;
  auto queue = Open(dir.path());
  absl::StatusOr<ScheduleInfo> schedule =
      queue->AddSchedule(R"({"name": "nightly"})", "n.json", absl::Hours(1), 0);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(schedule->id, "schedule-nightly-1");
  const absl::Time t0 = absl::Now();
  std::vector<std::string> runs = queue->SubmitDue(t0, {});
  ASSERT_EQ(runs.size(), 1u);  // the first at once
  EXPECT_EQ(runs[0], "nightly-1");
  // Its run still waits: not another, however late.
  EXPECT_TRUE(queue->SubmitDue(t0 + absl::Hours(5), {}).empty());
  ASSERT_TRUE(queue->Cancel("nightly-1").ok());
  EXPECT_TRUE(queue->SubmitDue(t0 + absl::Minutes(30), {}).empty());
  runs = queue->SubmitDue(t0 + absl::Minutes(61), {});
  ASSERT_EQ(runs.size(), 1u);
  absl::StatusOr<std::vector<std::string>> log = queue->Logs(runs[0], 10);
  ASSERT_TRUE(log.ok());
  EXPECT_THAT(log->back(), HasSubstr("scheduled by schedule-nightly-1 (every 1h)"));

  // Kept across a restart, and ended for good.
  auto reopened = Open(dir.path());
  std::vector<ScheduleInfo> kept = reopened->Schedules();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].runs, (std::vector<std::string>{"nightly-1", runs[0]}));
  EXPECT_EQ(kept[0].every, absl::Hours(1));
  ASSERT_TRUE(reopened->CancelSchedule("schedule-nightly-1").ok());
  EXPECT_TRUE(absl::IsNotFound(reopened->CancelSchedule("schedule-nightly-1").status()));
  EXPECT_TRUE(reopened->Schedules().empty());
  EXPECT_FALSE(std::filesystem::exists(dir.File("schedules/schedule-nightly-1")));
}

TEST(RunQueueTest, AScheduleSubmitsWhenTheDevicesDeclareEnoughNewExamples) {
  testing::TempDir dir;
  auto queue = Open(dir.path());
  ASSERT_TRUE(queue->AddSchedule(R"({"name": "fresh"})", "f.json", absl::ZeroDuration(), 100).ok());
  const absl::Time now = absl::Now();
  // What the devices hold when the schedule is first seen is not new.
  EXPECT_TRUE(queue->SubmitDue(now, {{"a", 50}}).empty());
  EXPECT_TRUE(queue->SubmitDue(now, {{"a", 80}, {"b", 30}}).empty());  // 60 new
  std::vector<std::string> runs = queue->SubmitDue(now, {{"a", 120}, {"b", 30}});  // 100
  ASSERT_EQ(runs.size(), 1u);
  ASSERT_TRUE(queue->Cancel(runs[0]).ok());
  // Counted from that submission on: a device that left or shrank adds
  // nothing, growth does.
  EXPECT_TRUE(queue->SubmitDue(now, {{"a", 120}, {"b", 30}}).empty());
  EXPECT_TRUE(queue->SubmitDue(now, {{"a", 210}}).empty());
  EXPECT_EQ(queue->SubmitDue(now, {{"a", 220}, {"b", 0}}).size(), 1u);
  EXPECT_EQ(NewExamples({{"a", 5}, {"b", 7}, {"c", 1}}, {{"a", 10}, {"b", 2}}), 6);
}

TEST(RunQueueTest, AScheduleWithoutATriggerTooOftenOrWithABadConfigIsRefused) {
  testing::TempDir dir;
  auto queue = Open(dir.path());
  auto refused = [&](const std::string& config, absl::Duration every, int64_t fresh) {
    absl::StatusOr<ScheduleInfo> s = queue->AddSchedule(config, "s.json", every, fresh);
    return s.ok() ? std::string("scheduled") : std::string(s.status().message());
  };
  EXPECT_THAT(refused(R"({"name": "s"})", absl::ZeroDuration(), 0), HasSubstr("needs"));
  EXPECT_THAT(refused(R"({"name": "s"})", absl::Seconds(10), 0), HasSubstr("at least 1m"));
  EXPECT_THAT(refused(R"({"name": "s", "bad": 1})", absl::Hours(1), 0),
              HasSubstr("unknown key 'bad'"));
  EXPECT_TRUE(queue->Schedules().empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("schedules")));
}

TEST(RunQueueTest, RunIdsAreMadeOfTheNameAndTheNumber) {
  EXPECT_EQ(RunIdFor("fashion-mnist", 3), "fashion-mnist-3");
  EXPECT_EQ(RunIdFor("a b/c", 1), "a-b-c-1");
  EXPECT_EQ(RunIdFor("", 1), "run-1");
  EXPECT_EQ(RunIdFor(".hidden", 1), "run.hidden-1");
  EXPECT_EQ(RunIdFor(std::string(200, 'x'), 12), std::string(64, 'x') + "-12");
}

TEST(RunQueueTest, RunInfoSurvivesItsJsonAndADamagedOneIsDataLoss) {
  RunInfo info;
  info.id = "r-4";
  info.name = "r";
  info.seq = 4;
  info.state = RunState::kRunning;
  info.submitted = absl::FromUnixMillis(1000);
  info.started = absl::FromUnixMillis(2000);
  info.rounds_done = 2;
  info.rounds_planned = 5;
  info.final_version = 2;
  info.metrics["accuracy"] = 0.5;
  absl::StatusOr<RunInfo> back = RunInfoFromJson(RunInfoToJson(info), "run.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, "r-4");
  EXPECT_EQ(back->state, RunState::kRunning);
  EXPECT_EQ(back->started, absl::FromUnixMillis(2000));
  EXPECT_EQ(back->finished, absl::InfinitePast());
  EXPECT_EQ(back->rounds_done, 2u);
  EXPECT_DOUBLE_EQ(MetricAsDouble(back->metrics.at("accuracy")), 0.5);
  nlohmann::json j = RunInfoToJson(info);
  j["state"] = "exploded";
  EXPECT_TRUE(absl::IsDataLoss(RunInfoFromJson(j, "run.json").status()));
  j = RunInfoToJson(info);
  j["id"] = "../../etc";
  EXPECT_FALSE(RunInfoFromJson(j, "run.json").ok());
  j = RunInfoToJson(info);
  j.erase("seq");
  EXPECT_TRUE(absl::IsDataLoss(RunInfoFromJson(j, "run.json").status()));
}

}  // namespace
}  // namespace shoal
