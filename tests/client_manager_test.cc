#include "server/client_manager.h"

#include <atomic>
#include <thread>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "tests/fake_client_proxy.h"

namespace shoal {
namespace {

using testing::FakeClientProxy;

std::shared_ptr<FakeClientProxy> Proxy(const std::string& id) {
  return std::make_shared<FakeClientProxy>(
      id, [](const FitIns&) -> std::optional<absl::StatusOr<FitRes>> { return std::nullopt; });
}

std::vector<std::string> Ids(const std::vector<std::shared_ptr<ClientProxy>>& v) {
  std::vector<std::string> ids;
  for (const auto& p : v) ids.push_back(p->id());
  return ids;
}

class ClientManagerTest : public ::testing::Test {
 protected:
  ClientManagerTest() : clients_(Options()) {}
  ClientManagerOptions Options() {
    ClientManagerOptions o;
    o.liveness_timeout = absl::Seconds(30);
    o.clock = &clock_;
    return o;
  }
  void AddClients(int n) {
    for (int i = 0; i < n; ++i) clients_.Register(Proxy("c" + std::to_string(100 + i)));
  }
  FakeClock clock_{absl::FromUnixSeconds(1000)};
  ClientManager clients_;
};

TEST_F(ClientManagerTest, SameSeedGivesSameSampleAndSeedsDiffer) {
  AddClients(50);
  SamplingOptions s{0.2, 1};
  auto a = Ids(clients_.Sample(s, 7));
  auto b = Ids(clients_.Sample(s, 7));
  auto c = Ids(clients_.Sample(s, 8));
  EXPECT_EQ(a.size(), 10u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
}

TEST_F(ClientManagerTest, FractionRoundsUpAndMinimumApplies) {
  AddClients(10);
  EXPECT_EQ(clients_.Sample({0.25, 1}, 1).size(), 3u);  // ceil(2.5)
  EXPECT_EQ(clients_.Sample({0.1, 4}, 1).size(), 4u);   // min wins
  EXPECT_EQ(clients_.Sample({1.0, 50}, 1).size(), 10u); // capped at live
}

TEST_F(ClientManagerTest, SilentClientsAreNotLiveAndHeartbeatRevivesThem) {
  AddClients(3);
  clock_.Advance(absl::Seconds(20));
  EXPECT_TRUE(clients_.Heartbeat("c100"));
  clock_.Advance(absl::Seconds(20));  // c101, c102 silent for 40 s > 30 s
  EXPECT_EQ(clients_.LiveClientIds(), std::vector<std::string>{"c100"});
  EXPECT_EQ(Ids(clients_.Sample({1.0, 1}, 1)), std::vector<std::string>{"c100"});
  EXPECT_TRUE(clients_.Heartbeat("c102"));
  EXPECT_EQ(clients_.LiveClientIds().size(), 2u);
  EXPECT_FALSE(clients_.Heartbeat("nobody"));
}

TEST_F(ClientManagerTest, UnresponsiveClientIsNotLiveUntilHeardFromAgain) {
  AddClients(2);
  clients_.MarkUnresponsive("c100");
  clients_.MarkUnresponsive("nobody");  // unknown: nothing happens
  EXPECT_EQ(clients_.LiveClientIds(), std::vector<std::string>{"c101"});
  EXPECT_EQ(Ids(clients_.Sample({1.0, 2}, 1)), std::vector<std::string>{"c101"});
  EXPECT_EQ(clients_.NumRegistered(), 2u);  // still known: it may call in
  EXPECT_TRUE(clients_.Heartbeat("c100"));
  EXPECT_EQ(clients_.LiveClientIds(), (std::vector<std::string>{"c100", "c101"}));
}

TEST_F(ClientManagerTest, RejoinReplacesAndUnregisterRemoves) {
  auto first = Proxy("dev");
  auto second = Proxy("dev");
  clients_.Register(first);
  clients_.Register(second);
  EXPECT_EQ(clients_.NumRegistered(), 1u);
  EXPECT_EQ(clients_.Find("dev"), second);
  clients_.Unregister("dev");
  EXPECT_EQ(clients_.Find("dev"), nullptr);
}

// The wait ends when the clock passes the timeout, not before, and takes no
// real time: the test moves the clock.
TEST_F(ClientManagerTest, WaitForLiveTimesOutWhenTheClockPassesTheTimeout) {
  AddClients(1);
  EXPECT_TRUE(clients_.WaitForLive(1, absl::Seconds(5)));
  std::atomic<bool> done{false};
  bool live = true;
  std::thread waiter([&] {
    live = clients_.WaitForLive(2, absl::Seconds(5));
    done.store(true);
  });
  clock_.BlockUntilWaiters(1);
  clock_.Advance(absl::Seconds(4));
  EXPECT_FALSE(done.load()) << "gave up before its timeout";
  clock_.Advance(absl::Seconds(1));
  waiter.join();
  EXPECT_FALSE(live);
}

TEST_F(ClientManagerTest, WaitForLiveWakesWhenEnoughClientsJoin) {
  AddClients(1);
  bool live = false;
  std::thread waiter([&] { live = clients_.WaitForLive(2, absl::Seconds(5)); });
  clock_.BlockUntilWaiters(1);
  clients_.Register(Proxy("late-joiner"));  // no time passes
  waiter.join();
  EXPECT_TRUE(live);
}

}  // namespace
}  // namespace shoal
