// Fault injection over real processes: a real `shoal server` and real
// `shoal client` processes on 127.0.0.1, with faults a device fleet meets in
// the field. Clients are SIGKILLed at each step of a round; connections are
// cut (RST), refused and stalled by a TcpProxy between a client and the
// server; and garbage is written to the server's port. In every case the
// rounds must close by their deadlines with the results that did arrive,
// each result counted once, and the server must stay up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gtest/gtest.h"
#include "tests/federation_fixture.h"
#include "tests/subprocess.h"
#include "tests/tcp_proxy.h"

namespace shoal {
namespace {

using nlohmann::json;
using testing::Subprocess;
using testing::TcpProxy;
using testing::WaitForLogLine;

// The 2NN's parameters as float32 (784*200 + 200 + 200*200 + 200 + 200*10
// + 10 values): the size of every model download and update upload, give or
// take framing. Triggers fire well inside such a transfer.
constexpr int64_t kModelBytes = 199'210 * 4;
constexpr int64_t kInsideADownload = 100'000;  // server -> client
constexpr int64_t kInsideAnUpload = 300'000;   // client -> server

class FaultInjectionTest : public testing::FederationTest {
 protected:
  // Processes whose logs are printed when the test fails.
  void Watch(const Subprocess& p, std::string name) {
    watched_.push_back({p.log_path(), std::move(name)});
  }

  // The processes are gone by now; their log files are not.
  void TearDown() override {
    if (!HasFailure()) return;
    for (const auto& [path, name] : watched_) {
      std::string log = ReadFile(path).value_or("(no log)");
      constexpr size_t kTail = 6000;
      if (log.size() > kTail) log = "[...]\n" + log.substr(log.size() - kTail);
      std::cerr << "\n===== log of " << name << " =====\n" << log << "\n";
    }
  }

  // StartClientVia starts client `partition` like StartClient, but dialing
  // `server_address` (a TcpProxy's) instead of the config's.
  std::unique_ptr<Subprocess> StartClientVia(const std::string& config, int partition,
                                             const std::string& server_address) {
    return std::make_unique<Subprocess>(
        std::vector<std::string>{SHOAL_BINARY, "client", "--config", config, "--partition",
                                 std::to_string(partition), "--state-dir",
                                 dir_.File(absl::StrCat("client-", partition)), "--pki-dir",
                                 Bundle(absl::StrCat("client-", partition)), "--server",
                                 server_address},
        dir_.File(absl::StrCat("client-", partition, ".log")));
  }

  std::unique_ptr<TcpProxy> Proxy() {
    absl::StatusOr<std::unique_ptr<TcpProxy>> proxy = TcpProxy::Start(port_);
    EXPECT_TRUE(proxy.ok()) << proxy.status();
    return proxy.ok() ? *std::move(proxy) : nullptr;
  }

  // CheckRoundsTrained: every training round updated the model, stayed
  // within its deadlines (fit, then federated evaluation up to twice the
  // round's budget, plus the server's own evaluation), and its global model
  // is finite and well above the initial one.
  void CheckRoundsTrained(const json& h, double round_s) {
    const double acc0 = h["rounds"][0]["test_accuracy"];
    for (size_t r = 1; r < h["rounds"].size(); ++r) {
      const json& round = h["rounds"][r];
      EXPECT_TRUE(round["model_updated"].get<bool>()) << round.dump(2);
      EXPECT_LE(round["answered"].get<int>(), round["sampled"].get<int>()) << round.dump(2);
      EXPECT_LT(round["seconds"].get<double>(), 2 * round_s + 15) << round.dump(2);
      ASSERT_TRUE(round["test_accuracy"].is_number()) << round.dump(2);
      ASSERT_TRUE(round["train_loss"].is_number()) << round.dump(2);
      EXPECT_TRUE(std::isfinite(round["train_loss"].get<double>())) << round.dump(2);
      EXPECT_GT(round["test_accuracy"].get<double>(), acc0 + 0.3) << h.dump(2);
    }
  }

  std::vector<std::pair<std::string, std::string>> watched_;  // log path, name
};

std::vector<std::string> FailedClients(const json& round) {
  std::vector<std::string> ids;
  for (const json& f : round["failures"]) ids.push_back(f["client"]);
  std::sort(ids.begin(), ids.end());
  return ids;
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// An echo server on 127.0.0.1 for the proxy's own tests: one thread per
// connection, echoing until the peer closes or resets.
class EchoServer {
 public:
  EchoServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 16) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    acceptor_ = std::thread([this] {
      while (true) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;  // shut down
        echoers_.emplace_back([c] {
          char buf[8192];
          for (ssize_t n; (n = read(c, buf, sizeof(buf))) > 0;) {
            if (send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
          }
          close(c);
        });
      }
    });
  }
  ~EchoServer() {
    shutdown(fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    for (auto& t : echoers_) t.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> echoers_;
};

// ReadExactly reads `n` bytes from `fd` within `timeout`; what it got.
std::string ReadExactly(int fd, size_t n, absl::Duration timeout) {
  std::string out;
  char buf[8192];
  const absl::Time until = absl::Now() + timeout;
  pollfd p{fd, POLLIN, 0};
  while (out.size() < n && absl::Now() < until) {
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t r = read(fd, buf, std::min(sizeof(buf), n - out.size()));
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

int ConnectTo(int port);

TEST(TcpProxyTest, ForwardsCountsPausesAndCuts) {
  EchoServer echo;
  ASSERT_GT(echo.port(), 0);
  absl::StatusOr<std::unique_ptr<TcpProxy>> made = TcpProxy::Start(echo.port());
  ASSERT_TRUE(made.ok()) << made.status();
  TcpProxy& proxy = **made;
  EXPECT_EQ(proxy.address(), absl::StrCat("127.0.0.1:", proxy.port()));

  const int fd = ConnectTo(proxy.port());
  ASSERT_GE(fd, 0);
  const std::string hello(100'000, 'x');
  ASSERT_EQ(send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), 100'000);
  EXPECT_EQ(ReadExactly(fd, hello.size(), absl::Seconds(10)), hello);
  ASSERT_EQ(proxy.Connections().size(), 1u);
  EXPECT_EQ(proxy.TotalBytes(TcpProxy::kClientToServer), 100'000);
  EXPECT_EQ(proxy.TotalBytes(TcpProxy::kServerToClient), 100'000);

  // Paused: nothing comes back; resumed: everything does.
  proxy.Pause();
  ASSERT_EQ(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(ReadExactly(fd, 4, absl::Milliseconds(300)), "");
  proxy.Resume();
  EXPECT_EQ(ReadExactly(fd, 4, absl::Seconds(10)), "ping");

  // A trigger inside a transfer: the action runs before the bytes that
  // crossed the threshold move on, so a cut there loses them.
  absl::Notification fired;
  proxy.OnBytes(TcpProxy::kClientToServer, 10, [&] {
    proxy.CutAll();
    fired.Notify();
  });
  ASSERT_EQ(send(fd, "0123456789abcdef", 16, MSG_NOSIGNAL), 16);
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(proxy.TriggerFired());
  char c;
  errno = 0;
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10'000), 1);
  EXPECT_EQ(read(fd, &c, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);  // a reset, not an orderly close
  close(fd);

  // Refusing: connections are accepted and reset at once.
  proxy.SetRefusing(true);
  const int refused_fd = ConnectTo(proxy.port());
  ASSERT_GE(refused_fd, 0);
  p = {refused_fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10'000), 1);
  EXPECT_LE(read(refused_fd, &c, 1), 0);
  close(refused_fd);
  EXPECT_EQ(proxy.refused(), 1);
  proxy.SetRefusing(false);
  const int again = ConnectTo(proxy.port());
  ASSERT_GE(again, 0);
  ASSERT_EQ(send(again, "back", 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(ReadExactly(again, 4, absl::Seconds(10)), "back");
  EXPECT_EQ(proxy.Connections().size(), 2u);
  close(again);
}

// One federation, five victims, each SIGKILLed at a different step of round 1
// while three survivors train throughout:
//   client-3  joins during round 1 (after the sampling), killed before it was
//             handed any task
//   client-4  killed while downloading the model (its link stalled mid-transfer)
//   client-5  killed in the middle of uploading its update
//   client-6  killed after its update was accepted, before the round closed
//   client-7  killed while fetching the new model for federated evaluation
// (A client killed while training is IntegrationTest's
// ClientKilledMidRoundDoesNotStallTheRoundPastItsDeadline.)
TEST_F(FaultInjectionTest, ClientsKilledAtEachStepOfARound) {
  constexpr double kRoundSeconds = 10;
  const std::string config =
      WriteConfig(/*rounds=*/3, /*min_fit=*/2, kRoundSeconds, [](json& c) {
        c["sampling"]["min_available_clients"] = 7;
        c["strategy"] = {{"name", "fedavg"}, {"fraction_evaluate", 1.0}};
      });
  auto server = StartServer(config);
  Watch(*server, "server");
  std::vector<std::unique_ptr<Subprocess>> survivors;
  for (int i = 0; i < 3; ++i) {
    survivors.push_back(StartClient(config, i));
    Watch(*survivors.back(), absl::StrCat("client-", i));
  }
  std::unique_ptr<TcpProxy> link[8];
  std::unique_ptr<Subprocess> victim[8];
  for (int i = 4; i <= 7; ++i) {
    link[i] = Proxy();
    ASSERT_NE(link[i], nullptr);
  }
  // Downloading: the first large server-to-client transfer is the round 1
  // model. Stall the link there (the server's writes block, as with a
  // device that vanished without a goodbye), then kill.
  absl::Notification downloading, uploading, evaluating;
  link[4]->OnBytes(TcpProxy::kServerToClient, kInsideADownload, [&] {
    link[4]->Pause();
    downloading.Notify();
  });
  // Uploading: the first large client-to-server transfer is the update.
  link[5]->OnBytes(TcpProxy::kClientToServer, kInsideAnUpload, [&] {
    link[5]->Pause();
    uploading.Notify();
  });
  for (int i = 4; i <= 7; ++i) {
    victim[i] = StartClientVia(config, i, link[i]->address());
    Watch(*victim[i], absl::StrCat("client-", i));
  }

  ASSERT_TRUE(WaitForLogLine(*server, "round 1/3: asked 7", absl::Seconds(120)));
  // Round 1 has sampled; this one is live from now on but has no task
  // until the round's evaluation at the earliest.
  victim[3] = StartClient(config, 3);
  Watch(*victim[3], "client-3");

  ASSERT_TRUE(downloading.WaitForNotificationWithTimeout(absl::Seconds(60)));
  victim[4]->Kill(SIGKILL);
  ASSERT_TRUE(uploading.WaitForNotificationWithTimeout(absl::Seconds(60)));
  victim[5]->Kill(SIGKILL);
  ASSERT_TRUE(WaitForLogLine(*victim[6], "round 1: trained", absl::Seconds(60)));
  victim[6]->Kill(SIGKILL);
  // Its update is in; the next model it fetches is round 1's, to evaluate
  // (evaluation starts at the fit deadline: client-4 and -5 never answer).
  ASSERT_TRUE(WaitForLogLine(*victim[7], "round 1: trained", absl::Seconds(60)));
  link[7]->OnBytes(TcpProxy::kServerToClient, kInsideADownload, [&] {
    link[7]->Pause();
    evaluating.Notify();
  });
  ASSERT_TRUE(WaitForLogLine(*server, "client 'client-3' joined", absl::Seconds(60)));
  victim[3]->Kill(SIGKILL);
  ASSERT_TRUE(evaluating.WaitForNotificationWithTimeout(absl::Seconds(3 * kRoundSeconds)));
  victim[7]->Kill(SIGKILL);

  ASSERT_EQ(server->Wait(absl::Minutes(3)), 0);
  for (auto& s : survivors) EXPECT_EQ(s->Wait(absl::Seconds(60)), 0);
  for (int i = 3; i <= 7; ++i) EXPECT_EQ(victim[i]->Wait(absl::Seconds(10)), 128 + SIGKILL);

  json h = History();
  ASSERT_EQ(h["rounds"].size(), 4u) << h.dump(2);
  CheckRoundsTrained(h, kRoundSeconds);
  // Round 1: the survivors and the two victims whose updates arrived count;
  // the two killed before their update arrived fail at the deadline.
  const json& r1 = h["rounds"][1];
  EXPECT_EQ(r1["sampled"], 7) << r1.dump(2);
  EXPECT_EQ(r1["answered"], 5) << r1.dump(2);
  EXPECT_EQ(FailedClients(r1), (std::vector<std::string>{"client-4", "client-5"})) << r1.dump(2);
  for (const json& f : r1["failures"]) {
    EXPECT_NE(f["error"].get<std::string>().find("no result before the round 1 deadline"),
              std::string::npos)
        << r1.dump(2);
  }
  EXPECT_GT(r1["train_examples"].get<int>(), 0) << r1.dump(2);
  // The survivors evaluated the new model although client-7 died doing so
  // (and client-3 and -6 were dead when asked).
  EXPECT_TRUE(r1["federated_accuracy"].is_number()) << r1.dump(2);
  // The next rounds run without the dead: a client that let a deadline pass
  // is not asked again until it is heard from.
  for (int r = 2; r <= 3; ++r) {
    const json& round = h["rounds"][r];
    EXPECT_EQ(round["sampled"], 3) << round.dump(2);
    EXPECT_EQ(round["answered"], 3) << round.dump(2);
    EXPECT_TRUE(round["failures"].empty()) << round.dump(2);
    EXPECT_LT(round["seconds"].get<double>(), kRoundSeconds) << round.dump(2);
  }

  // The logs agree on who did what.
  for (auto& s : survivors) {
    for (int r = 1; r <= 3; ++r) {
      EXPECT_EQ(Count(s->Log(), absl::StrCat("round ", r, ": trained")), 1) << s->Log();
    }
  }
  EXPECT_EQ(Count(victim[3]->Log(), "round "), 0) << victim[3]->Log();
  EXPECT_EQ(Count(victim[4]->Log(), "trained"), 0) << victim[4]->Log();
  EXPECT_EQ(Count(victim[5]->Log(), "trained"), 0) << victim[5]->Log();
  EXPECT_GT(link[4]->TotalBytes(TcpProxy::kServerToClient), kInsideADownload);
  EXPECT_LT(link[4]->TotalBytes(TcpProxy::kServerToClient), kModelBytes);
  EXPECT_GT(link[5]->TotalBytes(TcpProxy::kClientToServer), kInsideAnUpload);
  EXPECT_LT(link[5]->TotalBytes(TcpProxy::kClientToServer), kModelBytes);
  const std::string log = server->Log();
  EXPECT_NE(log.find("round 1: client 'client-4' failed"), std::string::npos);
  EXPECT_NE(log.find("round 1: client 'client-5' failed"), std::string::npos);
  EXPECT_NE(log.find("Final test accuracy"), std::string::npos);
}

// Every client reaches the server through a TcpProxy. Round 1: every
// connection is reset at once while client-0 downloads the model. Round 2:
// every connection is reset and new ones refused for 3 s while client-1
// downloads. Round 3: client-2's connection is reset in the middle of its
// upload. The agents reconnect by themselves, every round gets every
// client's result exactly once, and the run finishes.
TEST_F(FaultInjectionTest, CutAndRefusedConnectionsReconnectAndCountEachResultOnce) {
  constexpr double kRoundSeconds = 40;
  const std::string config = WriteConfig(/*rounds=*/4, /*min_fit=*/3, kRoundSeconds);
  auto server = StartServer(config);
  Watch(*server, "server");
  std::unique_ptr<TcpProxy> link[3];
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 3; ++i) {
    link[i] = Proxy();
    ASSERT_NE(link[i], nullptr);
  }
  auto cut_everything = [&] {
    for (auto& l : link) l->CutAll();
  };
  absl::Notification cut_in_round1, refusing_in_round2, cut_in_upload;
  link[0]->OnBytes(TcpProxy::kServerToClient, kInsideADownload, [&] {
    cut_everything();
    cut_in_round1.Notify();
  });
  // Round 2's download by client-1 is the first one after its round 1
  // upload: arm the refusal from inside that upload.
  link[1]->OnBytes(TcpProxy::kClientToServer, kInsideAnUpload, [&] {
    link[1]->OnBytes(TcpProxy::kServerToClient, kInsideADownload, [&] {
      for (auto& l : link) l->SetRefusing(true);
      cut_everything();
      refusing_in_round2.Notify();
    });
  });
  for (int i = 0; i < 3; ++i) {
    clients.push_back(StartClientVia(config, i, link[i]->address()));
    Watch(*clients.back(), absl::StrCat("client-", i));
  }

  ASSERT_TRUE(cut_in_round1.WaitForNotificationWithTimeout(absl::Seconds(120)));
  ASSERT_TRUE(refusing_in_round2.WaitForNotificationWithTimeout(absl::Seconds(90)));
  absl::SleepFor(absl::Seconds(3));
  for (auto& l : link) l->SetRefusing(false);

  // Client-2's next upload after its round 2 one is round 3's.
  ASSERT_TRUE(WaitForLogLine(*clients[2], "round 2: trained", absl::Seconds(60)));
  const int64_t up_before = link[2]->TotalBytes(TcpProxy::kClientToServer);
  link[2]->OnBytes(TcpProxy::kClientToServer, kInsideAnUpload, [&] {
    link[2]->CutAll();
    cut_in_upload.Notify();
  });
  ASSERT_TRUE(cut_in_upload.WaitForNotificationWithTimeout(absl::Seconds(60)));
  ASSERT_TRUE(WaitForLogLine(*server, "round 3/4 |", absl::Seconds(60)));
  const int64_t up_round3 = link[2]->TotalBytes(TcpProxy::kClientToServer) - up_before;

  ASSERT_EQ(server->Wait(absl::Minutes(3)), 0);
  for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0);

  json h = History();
  ASSERT_EQ(h["rounds"].size(), 5u) << h.dump(2);
  CheckRoundsTrained(h, kRoundSeconds);
  for (int r = 1; r <= 4; ++r) {
    const json& round = h["rounds"][r];
    EXPECT_EQ(round["sampled"], 3) << round.dump(2);
    EXPECT_EQ(round["answered"], 3) << round.dump(2);
    EXPECT_TRUE(round["failures"].empty()) << round.dump(2);
    // Well inside the deadline: the agents came back by themselves.
    EXPECT_LT(round["seconds"].get<double>(), kRoundSeconds) << round.dump(2);
  }
  // Back within seconds of the refusal's end (3 s): the agents drive their
  // reconnection while they back off, rather than leave it to gRPC's 5 s
  // backup poller (which made this round take 25 s).
  EXPECT_LT(h["rounds"][2]["seconds"].get<double>(), 15) << h["rounds"][2].dump(2);
  // Client-2 sent its round 3 update twice: once cut, once whole.
  EXPECT_GT(up_round3, kInsideAnUpload + kModelBytes);
  for (int i = 0; i < 3; ++i) {
    const std::string log = clients[i]->Log();
    // A client's upload succeeds at most once per round (a reset can in
    // principle swallow the answer to one that did, so the faulty rounds
    // allow none); round 4 had no fault.
    for (int r = 1; r <= 3; ++r) {
      EXPECT_LE(Count(log, absl::StrCat("round ", r, ": trained")), 1) << log;
    }
    EXPECT_EQ(Count(log, "round 4: trained"), 1) << log;
    EXPECT_TRUE(log.find("lost the server") != std::string::npos ||
                log.find("failed") != std::string::npos)
        << log;
    // The initial connection, one after the cut, one after the refusal.
    EXPECT_GE(link[i]->Connections().size(), 3u) << "client-" << i;
  }
  int64_t refused = 0;
  for (auto& l : link) refused += l->refused();
  EXPECT_GT(refused, 0);
  EXPECT_GE(Count(server->Log(), "SubmitFit from"), 1) << "the cut upload was refused";
}

// Garbage of many kinds on the server's port, before and while a federation
// runs: the server neither crashes nor stalls, every client answers every
// round, and a client that joins after the garbage trains like the others.
enum class Garbage {
  kRandomBytes,
  kHttp11Request,
  kTruncatedTlsClientHello,
  kHttp2PrefaceThenJunk,
  kHugeHttp2Frame,
  kHugeTlsRecord,
};
constexpr Garbage kAllGarbage[] = {Garbage::kRandomBytes,          Garbage::kHttp11Request,
                                   Garbage::kTruncatedTlsClientHello, Garbage::kHttp2PrefaceThenJunk,
                                   Garbage::kHugeHttp2Frame,       Garbage::kHugeTlsRecord};

std::string GarbageBytes(Garbage kind, std::mt19937_64& rng) {
  auto random = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  };
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  switch (kind) {
    case Garbage::kRandomBytes:
      return random(1 + rng() % 65536);
    case Garbage::kHttp11Request:
      return "GET /shoal.v1.Federation/Join HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n";
    case Garbage::kTruncatedTlsClientHello:
      // Record header (handshake, TLS 1.0 record version, 512 bytes), then a
      // ClientHello header announcing 508 bytes and a random, cut short.
      return std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + random(20);
    case Garbage::kHttp2PrefaceThenJunk:
      return preface + random(4096);
    case Garbage::kHugeHttp2Frame:
      // A SETTINGS frame claiming 16 MiB - 1 bytes of payload.
      return preface + std::string("\xff\xff\xff\x04\x00\x00\x00\x00\x00", 9) + random(1024);
    case Garbage::kHugeTlsRecord:
      // An application-data record claiming 64 KiB - 1, way past the limit.
      return std::string("\x17\x03\x03\xff\xff", 5) + random(1024);
  }
  return {};
}

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// SendGarbage writes `kind` to a fresh connection, reads whatever the server
// answers for up to 200 ms, and closes. Returns whether it connected.
bool SendGarbage(int port, Garbage kind, std::mt19937_64& rng) {
  const int fd = ConnectTo(port);
  if (fd < 0) return false;
  const std::string bytes = GarbageBytes(kind, rng);
  // The server may close first; later writes then fail, which is fine.
  (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  pollfd p{fd, POLLIN, 0};
  char sink[4096];
  for (const absl::Time until = absl::Now() + absl::Milliseconds(200); absl::Now() < until;) {
    if (poll(&p, 1, 50) > 0 && read(fd, sink, sizeof(sink)) <= 0) break;
  }
  close(fd);
  return true;
}

// Garbage: each kind `repeats` times, then `silent` connections that send
// nothing, held open for `hold`. Returns the connections made.
int SprayGarbage(int port, int repeats, int silent, absl::Duration hold, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int made = 0;
  for (int i = 0; i < repeats; ++i) {
    for (Garbage kind : kAllGarbage) made += SendGarbage(port, kind, rng) ? 1 : 0;
  }
  std::vector<int> held;
  for (int i = 0; i < silent; ++i) {
    const int fd = ConnectTo(port);
    if (fd >= 0) held.push_back(fd);
  }
  absl::SleepFor(hold);
  for (int fd : held) close(fd);
  return made + static_cast<int>(held.size());
}

TEST_F(FaultInjectionTest, GarbageOnTheServerPortNeitherCrashesNorStallsTheRun) {
  constexpr double kRoundSeconds = 60;
  const std::string config =
      WriteConfig(/*rounds=*/3, /*min_fit=*/4, kRoundSeconds,
                  [](json& c) { c["sampling"]["min_available_clients"] = 4; });
  auto server = StartServer(config);
  Watch(*server, "server");
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(StartClient(config, i));
    Watch(*clients.back(), absl::StrCat("client-", i));
  }
  ASSERT_TRUE(WaitForLogLine(*server, "(3 registered)", absl::Seconds(120)));

  // Three clients are long-polling; the run waits for a fourth.
  const int before = SprayGarbage(port_, /*repeats=*/5, /*silent=*/50, absl::Seconds(3), 1);
  EXPECT_EQ(before, 5 * 6 + 50);
  EXPECT_EQ(server->Wait(absl::ZeroDuration()), -1) << "the server died of garbage";

  // A fresh client joins after the garbage; the rounds start with it, and
  // more garbage flies while they run.
  clients.push_back(StartClient(config, 3));
  Watch(*clients.back(), "client-3");
  std::atomic<bool> stop{false};
  std::atomic<int> during{0};
  std::thread sprayer([&] {
    for (uint64_t seed = 2; !stop.load(); ++seed) {
      during += SprayGarbage(port_, /*repeats=*/1, /*silent=*/5, absl::Milliseconds(200), seed);
    }
  });
  const int server_exit = server->Wait(absl::Minutes(3));
  stop = true;
  sprayer.join();
  ASSERT_EQ(server_exit, 0);
  for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0);
  EXPECT_GT(during.load(), 0);

  json h = History();
  ASSERT_EQ(h["rounds"].size(), 4u) << h.dump(2);
  CheckRoundsTrained(h, kRoundSeconds);
  for (int r = 1; r <= 3; ++r) {
    const json& round = h["rounds"][r];
    EXPECT_EQ(round["sampled"], 4) << round.dump(2);
    EXPECT_EQ(round["answered"], 4) << round.dump(2);
    EXPECT_TRUE(round["failures"].empty()) << round.dump(2);
  }
  const std::string log = server->Log();
  EXPECT_NE(log.find("client 'client-3' joined"), std::string::npos);
  EXPECT_NE(log.find("Final test accuracy"), std::string::npos);
  for (const char* crash : {"terminate called", "Segmentation fault", "Aborted", "core dumped",
                            "AddressSanitizer", "std::bad_alloc"}) {
    EXPECT_EQ(log.find(crash), std::string::npos) << crash;
  }
  for (int r = 1; r <= 3; ++r) {
    EXPECT_EQ(Count(clients[3]->Log(), absl::StrCat("round ", r, ": trained")), 1)
        << clients[3]->Log();
  }
}

}  // namespace
}  // namespace shoal
