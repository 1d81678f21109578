// Crash recovery end to end: a real `shoal server` is killed (SIGKILL) in
// the middle of a run of real `shoal client` processes and started again
// with the same command. The clients find it by themselves, the run ends
// with every round in its history exactly once, and no completed round is
// lost. Prints "rounds lost: N" for each kill.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "gtest/gtest.h"
#include "tests/federation_fixture.h"
#include "tests/subprocess.h"

namespace shoal {
namespace {

using nlohmann::json;
using testing::Subprocess;
using testing::WaitForLogLine;

constexpr int kRounds = 4;
constexpr int kClients = 3;

// LastCheckpointedRound is the newest "round N: checkpoint written" in
// `log`, or -1.
int LastCheckpointedRound(const std::string& log) {
  static const std::regex line("round (\\d+): checkpoint written");
  int last = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    last = std::max(last, std::stoi((*it)[1]));
  }
  return last;
}

class RecoveryTest : public testing::FederationTest {
 protected:
  std::string Config() {
    // Two local epochs: a round lasts long enough that a kill on its first
    // log line lands while the clients train.
    return WriteConfig(kRounds, /*min_fit=*/kClients, /*round_s=*/60,
                       [](json& c) { c["fit"]["local_epochs"] = 2; });
  }

  // KillAndResume kills the server once `kill_at` is in its log, starts it
  // again with the same command and runs the federation to the end. Returns
  // the round the new server resumed after.
  int KillAndResume(const std::string& kill_at) {
    const std::string config = Config();
    std::unique_ptr<Subprocess> server = StartServer(config);
    std::vector<std::unique_ptr<Subprocess>> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(StartClient(config, i));
    EXPECT_TRUE(WaitForLogLine(*server, kill_at, absl::Seconds(120))) << server->Log();
    server->Kill(SIGKILL);
    EXPECT_EQ(server->Wait(absl::Seconds(10)), 128 + SIGKILL);
    const std::string before = server->Log();
    const int completed = LastCheckpointedRound(before);

    // The same command again; its output goes on in the same log.
    server = StartServer(config);
    const int exit = server->Wait(absl::Minutes(3));
    const std::string after = server->Log().substr(before.size());
    EXPECT_EQ(exit, 0) << after;
    for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0) << c->Log();

    const std::regex resumed_line("resuming run 'integration' after round (\\d+) of 4");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(after, m, resumed_line)) << after;
    const int resumed = m.empty() ? -1 : std::stoi(m[1]);
    std::printf("killed with rounds 0..%d checkpointed; resumed after round %d; rounds lost: %d\n",
                completed, resumed, completed - resumed);
    EXPECT_EQ(resumed, completed) << "rounds lost";

    // Every round exactly once, and the final model is version 4 for the
    // server and every client.
    json h = History();
    std::map<int, int> seen;
    for (const json& r : h["rounds"]) ++seen[r["round"].get<int>()];
    for (int r = 0; r <= kRounds; ++r) EXPECT_EQ(seen[r], 1) << "round " << r << "\n" << h.dump(1);
    EXPECT_EQ(seen.size(), kRounds + 1u) << h.dump(1);
    EXPECT_TRUE(h["rounds"].back()["model_updated"].get<bool>());
    EXPECT_EQ(ReadModelRecord(dir_.path() + "/run/models")->version, kRounds);
    for (int i = 0; i < kClients; ++i) {
      absl::StatusOr<ModelRecord> mine = ReadModelRecord(dir_.File(absl::StrCat("client-", i)));
      EXPECT_TRUE(mine.ok() && mine->version == kRounds) << mine.status();
    }
    // Training went on from the checkpoint's model: the last round is at
    // least as good as the first.
    EXPECT_GE(h["rounds"].back()["test_accuracy"].get<double>(),
              h["rounds"][1]["test_accuracy"].get<double>() - 0.05)
        << h.dump(1);
    return resumed;
  }
};

TEST_F(RecoveryTest, ServerKilledDuringRoundTwoResumesAfterRoundOne) {
  EXPECT_EQ(KillAndResume("round 2/4: asked 3"), 1);

  // Started once more, the finished run says so and trains nothing.
  const std::string config = Config();
  const size_t offset = ReadFile(dir_.File("server.log"))->size();
  std::unique_ptr<Subprocess> again = StartServer(config);
  ASSERT_EQ(again->Wait(absl::Seconds(60)), 0);
  const std::string log = again->Log().substr(offset);
  EXPECT_NE(log.find("already finished: all 4 rounds are done"), std::string::npos) << log;
  EXPECT_EQ(log.find("asked"), std::string::npos) << log;

  // Another config on the same output dir is refused, naming the key.
  const std::string other = WriteConfig(kRounds, kClients, 60, [](json& c) {
    c["fit"]["local_epochs"] = 2;
    c["fit"]["learning_rate"] = 0.01;
  });
  std::unique_ptr<Subprocess> refused = StartServer(other);
  ASSERT_EQ(refused->Wait(absl::Seconds(60)), 2);
  const std::string why = refused->Log();
  EXPECT_NE(why.find("fit.learning_rate differ"), std::string::npos) << why;
  EXPECT_NE(why.find("--fresh"), std::string::npos) << why;

  // Issue 14: with the checkpoint deleted, a restart started the run over
  // silently (a new run ID, the history cut short, old versions left).
  const std::string run = dir_.path() + "/run";
  std::filesystem::remove_all(run + "/checkpoint");
  const size_t before_orphan = ReadFile(dir_.File("server.log"))->size();
  std::unique_ptr<Subprocess> orphan = StartServer(config);
  ASSERT_EQ(orphan->Wait(absl::Seconds(60)), 2);
  const std::string orphan_log = orphan->Log().substr(before_orphan);
  EXPECT_NE(orphan_log.find("holds a previous run (models/ (up to version 4), metrics.json"),
            std::string::npos)
      << orphan_log;
  EXPECT_NE(orphan_log.find("--fresh"), std::string::npos) << orphan_log;
  EXPECT_EQ(History()["rounds"].size(), kRounds + 1u);  // nothing was overwritten
  EXPECT_TRUE(ReadModelRecord(run + "/models", kRounds).ok());

  // --fresh discards the old models: a new run with nobody to train stops
  // waiting after a second, and the old run's version 4 is gone.
  const std::string lonely = WriteConfig(kRounds, kClients, 60, [](json& c) {
    c["timeouts"]["wait_for_clients_s"] = 1;
  });
  std::unique_ptr<Subprocess> fresh = StartServer(lonely, {"--fresh"});
  EXPECT_NE(fresh->Wait(absl::Seconds(60)), -1);
  EXPECT_TRUE(absl::IsNotFound(ReadModelRecord(run + "/models", kRounds).status()))
      << fresh->Log();
}

TEST_F(RecoveryTest, ServerKilledRightAfterACheckpointLosesNoRound) {
  EXPECT_GE(KillAndResume("round 2: checkpoint written"), 2);
}

}  // namespace
}  // namespace shoal
