// The whole SecAgg+ protocol in one process: a SecAggServer and n
// SecAggClients exchanging real messages (real X25519, AES-GCM, Shamir,
// AES-CTR masks), with clients dropping out at every stage, a server's view
// recorded byte for byte, and hostile messages from both sides.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "secagg/client.h"
#include "secagg/crypto.h"
#include "secagg/graph.h"
#include "secagg/server.h"
#include "secagg/wire.h"

namespace shoal::secagg {
namespace {

constexpr uint64_t kModulus = uint64_t{1} << 40;

// Ring: each client neighbours the k/2 next and previous on a cycle (k even),
// or everyone (k = n - 1).
std::vector<std::vector<uint32_t>> Ring(uint32_t n, uint32_t k) {
  std::vector<std::set<uint32_t>> sets(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (k == n - 1) {
      for (uint32_t j = 0; j < n; ++j) {
        if (j != i) sets[i].insert(j + 1);
      }
      continue;
    }
    for (uint32_t d = 1; d <= k / 2; ++d) {
      sets[i].insert((i + d) % n + 1);
      sets[i].insert((i + n - d) % n + 1);
    }
  }
  std::vector<std::vector<uint32_t>> out;
  for (const auto& s : sets) out.emplace_back(s.begin(), s.end());
  return out;
}

SecAggServerConfig Config(std::vector<std::vector<uint32_t>> graph, uint32_t threshold,
                          uint64_t length) {
  SecAggServerConfig config;
  config.session_id = *NewSessionId();
  config.neighbours = std::move(graph);
  config.threshold = threshold;
  config.vector_length = length;
  config.modulus = kModulus;
  return config;
}

std::vector<std::vector<uint64_t>> RandomInputs(uint32_t n, uint64_t length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint64_t>> inputs(n + 1);
  for (uint32_t u = 1; u <= n; ++u) {
    inputs[u].resize(length);
    for (uint64_t& x : inputs[u]) x = rng() % (uint64_t{1} << 20);
  }
  return inputs;
}

// Session runs one protocol with honest clients; dropouts[s] holds the
// clients that vanish before answering stage s (0..3). `record` collects
// every byte the server receives.
struct Outcome {
  absl::Status status;
  std::vector<uint64_t> sum;
  std::vector<uint32_t> summed;
  std::vector<size_t> survivors;
  std::vector<std::string> record;
};

Outcome RunSession(const SecAggServerConfig& config,
                   const std::vector<std::vector<uint64_t>>& inputs,
                   const std::vector<std::set<uint32_t>>& dropouts) {
  Outcome outcome;
  auto server = SecAggServer::Create(config);
  EXPECT_TRUE(server.ok()) << server.status();
  const uint32_t n = (*server)->num_clients();
  std::vector<std::unique_ptr<SecAggClient>> clients(n + 1);
  for (uint32_t u = 1; u <= n; ++u) clients[u] = std::make_unique<SecAggClient>();
  std::set<uint32_t> gone;
  for (int s = 0; !(*server)->finished(); ++s) {
    for (uint32_t u : (*server)->Expected()) {
      if (s < static_cast<int>(dropouts.size()) && dropouts[s].count(u)) gone.insert(u);
      if (gone.count(u)) continue;
      absl::StatusOr<v1::SecAggServerMessage> message = (*server)->MessageFor(u);
      EXPECT_TRUE(message.ok()) << message.status();
      if (clients[u]->NeedsInput() &&
          message->stage_case() == v1::SecAggServerMessage::kShares) {
        EXPECT_TRUE(clients[u]->SetInput(inputs[u]).ok());
      }
      absl::StatusOr<v1::SecAggClientMessage> reply = clients[u]->Handle(*message);
      if (!reply.ok()) {  // the client gave up (too few neighbours left)
        gone.insert(u);
        continue;
      }
      outcome.record.push_back(reply->SerializeAsString());
      absl::Status received = (*server)->Receive(u, *reply);
      EXPECT_TRUE(received.ok()) << received;
    }
    absl::Status advanced = (*server)->Advance();
    if (!advanced.ok()) {
      outcome.status = advanced;
      break;
    }
  }
  outcome.survivors = (*server)->survivors();
  if (outcome.status.ok()) {
    outcome.sum = (*server)->sum();
    outcome.summed = (*server)->summed_clients();
  }
  return outcome;
}

std::vector<uint64_t> PlainSum(const std::vector<std::vector<uint64_t>>& inputs,
                               const std::vector<uint32_t>& who) {
  std::vector<uint64_t> sum(inputs[who.front()].size(), 0);
  for (uint32_t u : who) AddInto(sum, inputs[u], kModulus);
  return sum;
}

// Draws each client's fate: drop before stage s with probability rate[s].
std::vector<std::set<uint32_t>> SeededDropouts(uint32_t n, const std::vector<double>& rates,
                                               uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<std::set<uint32_t>> out(rates.size());
  for (uint32_t u = 1; u <= n; ++u) {
    for (size_t s = 0; s < rates.size(); ++s) {
      if (unit(rng) < rates[s]) {
        out[s].insert(u);
        break;
      }
    }
  }
  return out;
}

TEST(SecAggProtocolTest, CompleteGraphWithoutDropoutsSumsExactly) {
  const uint32_t n = 8;
  const auto inputs = RandomInputs(n, 100, 1);
  Outcome outcome = RunSession(Config(Ring(n, n - 1), 5, 100), inputs, {});
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  std::vector<uint32_t> all;
  for (uint32_t u = 1; u <= n; ++u) all.push_back(u);
  EXPECT_EQ(outcome.summed, all);
  EXPECT_EQ(outcome.sum, PlainSum(inputs, all));
  EXPECT_EQ(outcome.survivors, (std::vector<size_t>{8, 8, 8, 8, 8}));
}

// Seeded dropouts before every stage: whenever the session completes, the
// sum is exactly that of the clients it reports, which are exactly those
// that sent a masked input.
void ExpectCorrectWithDropouts(uint32_t n, uint32_t k, uint32_t t, uint64_t length,
                               const std::vector<double>& rates, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "n=" << n << " k=" << k << " t=" << t
                                  << " seed=" << seed);
  const auto inputs = RandomInputs(n, length, seed);
  const auto dropouts = SeededDropouts(n, rates, seed);
  Outcome outcome = RunSession(Config(Ring(n, k), t, length), inputs, dropouts);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  std::set<uint32_t> expected;
  for (uint32_t u = 1; u <= n; ++u) {
    if (!dropouts[0].count(u) && !dropouts[1].count(u) && !dropouts[2].count(u)) {
      expected.insert(u);
    }
  }
  EXPECT_EQ(std::set<uint32_t>(outcome.summed.begin(), outcome.summed.end()), expected);
  EXPECT_EQ(outcome.sum, PlainSum(inputs, outcome.summed));
  ASSERT_EQ(outcome.survivors.size(), 5u);
  EXPECT_EQ(outcome.survivors[3], expected.size());
  EXPECT_EQ(outcome.survivors[4], expected.size() - dropouts[3].size());
}

TEST(SecAggProtocolTest, SumIsCorrectWithDropoutsAtEveryStage) {
  ExpectCorrectWithDropouts(20, 19, 11, 50, {0.05, 0.05, 0.1, 0.1}, 2);
  ExpectCorrectWithDropouts(100, 40, 21, 50, {0.03, 0.03, 0.1, 0.05}, 3);
  ExpectCorrectWithDropouts(100, 99, 51, 50, {0, 0, 0.3, 0}, 4);
}

TEST(SecAggProtocolTest, ThousandClientsWithDropoutsAtEveryStage) {
  ExpectCorrectWithDropouts(1000, 40, 24, 20, {0.02, 0.02, 0.05, 0.05}, 5);
}

// The server's unmasking spread over a caller's parallel_for gives the same
// sum (its groups fold into separate accumulators).
TEST(SecAggProtocolTest, ParallelUnmaskingGivesTheSameSum) {
  const uint32_t n = 60;
  SecAggServerConfig config = Config(Ring(n, 20), 11, 300);
  std::atomic<size_t> calls{0};
  config.parallel_for = [&](size_t tasks, const std::function<void(size_t)>& run) {
    calls += tasks;
    std::vector<std::thread> threads;
    for (size_t i = 0; i < tasks; ++i) threads.emplace_back(run, i);
    for (std::thread& t : threads) t.join();
  };
  config.parallelism = 3;
  const auto inputs = RandomInputs(n, 300, 12);
  Outcome outcome = RunSession(config, inputs, SeededDropouts(n, {0, 0.05, 0.15, 0}, 12));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(calls.load(), 3u);
  EXPECT_LT(outcome.summed.size(), n);
  EXPECT_EQ(outcome.sum, PlainSum(inputs, outcome.summed));
}

TEST(SecAggProtocolTest, ThousandClientsOnTheDerivedGraph) {
  GraphOptions options;
  options.dropout_rate = 0.1;
  absl::StatusOr<GraphParameters> params = ChooseGraphParameters(1000, options);
  ASSERT_TRUE(params.ok()) << params.status();
  ASSERT_FALSE(params->complete);
  absl::StatusOr<Bytes> seed = RandomBytes(kKeySize);
  auto graph = MakeNeighbourGraph(1000, params->degree, *seed);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const auto inputs = RandomInputs(1000, 10, 6);
  const auto dropouts = SeededDropouts(1000, {0.02, 0.02, 0.04, 0.02}, 6);
  Outcome outcome =
      RunSession(Config(*std::move(graph), params->threshold, 10), inputs, dropouts);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.sum, PlainSum(inputs, outcome.summed));
  EXPECT_GT(outcome.summed.size(), 900u);
}

TEST(SecAggProtocolTest, AbortsWhenTooFewSendMaskedInputs) {
  const uint32_t n = 10;
  std::set<uint32_t> many = {1, 2, 3, 4, 5, 6};
  Outcome outcome = RunSession(Config(Ring(n, n - 1), 6, 10), RandomInputs(n, 10, 7),
                               {{}, {}, many, {}});
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(outcome.status.message().find("only 4 of 10 clients sent masked inputs; "
                                          "the threshold is 6"),
            std::string::npos)
      << outcome.status;
  EXPECT_TRUE(outcome.sum.empty());
}

TEST(SecAggProtocolTest, AbortsWhenTooFewAdvertiseKeys) {
  Outcome outcome = RunSession(Config(Ring(5, 4), 3, 10), RandomInputs(5, 10, 8),
                               {{1, 2, 3}});
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(outcome.status.message().find("only 2 of 5 clients advertised keys"),
            std::string::npos)
      << outcome.status;
}

TEST(SecAggProtocolTest, AbortsWhenASelfMaskCannotBeRebuilt) {
  // Ring of 20, degree 4, threshold 3: client 10's neighbours are 8, 9, 11,
  // 12. If 8, 9 and 11 vanish before unmasking, client 10's seed has only one
  // share left.
  Outcome outcome = RunSession(Config(Ring(20, 4), 3, 10), RandomInputs(20, 10, 9),
                               {{}, {}, {}, {8, 9, 11}});
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(outcome.status.message().find("self-mask seed needs 3 shares"),
            std::string::npos)
      << outcome.status;
}

// ------------------------------------------------------------ server's view

TEST(SecAggProtocolTest, ServerViewRevealsOnlyTheSum) {
  const uint32_t n = 30;
  const uint64_t length = 2000;
  SecAggServerConfig config = Config(Ring(n, 10), 6, length);
  const auto inputs = RandomInputs(n, length, 10);
  const auto dropouts = std::vector<std::set<uint32_t>>{{}, {}, {3, 17}, {5}};
  Outcome outcome = RunSession(config, inputs, dropouts);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_EQ(outcome.summed.size(), 28u);
  EXPECT_EQ(outcome.sum, PlainSum(inputs, outcome.summed));

  std::map<uint32_t, std::vector<uint64_t>> masked;
  std::map<uint32_t, std::set<uint32_t>> seeds_revealed, keys_revealed;
  for (const std::string& bytes : outcome.record) {
    v1::SecAggClientMessage message;
    ASSERT_TRUE(message.ParseFromString(bytes));
    const uint32_t u = message.client_index();
    if (message.has_masked_input()) {
      masked[u] = *Unpack(message.masked_input().packed(), length, kModulus);
    }
    if (message.has_unmask()) {
      for (const auto& s : message.unmask().seed_shares()) seeds_revealed[s.peer()].insert(u);
      for (const auto& s : message.unmask().key_shares()) keys_revealed[s.peer()].insert(u);
    }
    // No client's input appears in anything the server received: not even
    // a window of 4 consecutive packed elements.
    for (uint32_t v = 1; v <= n; ++v) {
      const std::string packed = Pack(inputs[v], kModulus);
      for (size_t at = 0; at + 20 <= packed.size(); at += 997 * 5) {
        ASSERT_EQ(bytes.find(packed.substr(at, 20)), std::string::npos)
            << "client " << v << "'s input at element " << at / 5;
      }
    }
  }
  // Each masked vector differs from its input everywhere except where a
  // uniform mask happens to be 0 (probability 2^-40 per element).
  for (const auto& [u, y] : masked) {
    size_t equal = 0;
    for (size_t i = 0; i < length; ++i) equal += (y[i] == inputs[u][i]);
    EXPECT_EQ(equal, 0u) << "client " << u;
  }
  // The masked vectors minus the inputs look uniform: the mean of their top
  // bit is about 1/2 (a leak would give 0, since inputs are < 2^20).
  double top = 0;
  size_t count = 0;
  for (const auto& [u, y] : masked) {
    for (size_t i = 0; i < length; ++i) {
      top += ((y[i] + kModulus - inputs[u][i]) % kModulus) >> 39;
      ++count;
    }
  }
  EXPECT_NEAR(top / count, 0.5, 0.01);
  // The server never holds both secrets of any client: survivors' seeds
  // only, dropped clients' mask keys only.
  for (const auto& [v, holders] : keys_revealed) {
    EXPECT_TRUE(v == 3 || v == 17) << "mask key of survivor " << v << " revealed";
    EXPECT_EQ(seeds_revealed.count(v), 0u) << "both secrets of " << v << " revealed";
  }
  EXPECT_EQ(keys_revealed.size(), 2u);
  EXPECT_EQ(seeds_revealed.size(), 28u);
}

// ------------------------------------------------------------ hostile input

TEST(SecAggWireTest, PackRoundTripsAndUnpackRefusesValuesOutsideTheModulus) {
  EXPECT_EQ(BytesPerElement(uint64_t{1} << 40), 5u);
  EXPECT_EQ(BytesPerElement(1000), 2u);
  EXPECT_EQ(BytesPerElement(uint64_t{1} << 62), 8u);
  const std::vector<uint64_t> values = {0, 1, 999, 256};
  const std::string packed = Pack(values, 1000);
  EXPECT_EQ(packed.size(), 8u);
  EXPECT_EQ(*Unpack(packed, 4, 1000), values);
  std::string bad = packed;
  bad[1] = '\x04';  // element 0 becomes 1024
  EXPECT_EQ(Unpack(bad, 4, 1000).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Unpack(packed, 5, 1000).status().code(), absl::StatusCode::kInvalidArgument);
}

// Harness drives a session stage by stage so a test can tamper with single
// messages in between.
class Harness {
 public:
  Harness(uint32_t n, uint32_t threshold, uint64_t length)
      : config_(Config(Ring(n, n - 1), threshold, length)),
        inputs_(RandomInputs(n, length, 42)),
        clients_(n + 1) {
    server_ = *SecAggServer::Create(config_);
    for (uint32_t u = 1; u <= n; ++u) clients_[u] = std::make_unique<SecAggClient>();
  }

  SecAggServer& server() { return *server_; }
  SecAggClient& client(uint32_t u) { return *clients_[u]; }
  const SecAggServerConfig& config() const { return config_; }

  v1::SecAggServerMessage Ask(uint32_t u) {
    absl::StatusOr<v1::SecAggServerMessage> message = server_->MessageFor(u);
    EXPECT_TRUE(message.ok()) << message.status();
    return *message;
  }
  // Reply: the honest client u's answer to `message`.
  v1::SecAggClientMessage Reply(uint32_t u, const v1::SecAggServerMessage& message) {
    if (clients_[u]->NeedsInput() && message.has_shares()) {
      EXPECT_TRUE(clients_[u]->SetInput(inputs_[u]).ok());
    }
    absl::StatusOr<v1::SecAggClientMessage> reply = clients_[u]->Handle(message);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return *reply;
  }
  // Finish runs the current stage honestly for everyone still expected who
  // has not answered, skipping `skip`, and closes it.
  void Finish(const std::set<uint32_t>& skip = {}) {
    for (uint32_t u : server_->Expected()) {
      if (skip.count(u) || answered_.count(u)) continue;
      absl::Status status = server_->Receive(u, Reply(u, Ask(u)));
      EXPECT_TRUE(status.ok()) << status;
    }
    answered_.clear();
    absl::Status advanced = server_->Advance();
    ASSERT_TRUE(advanced.ok()) << advanced;
  }
  void MarkAnswered(uint32_t u) { answered_.insert(u); }

  std::vector<uint64_t> SumOf(const std::vector<uint32_t>& who) const {
    return PlainSum(inputs_, who);
  }
  const std::vector<uint64_t>& input(uint32_t u) const { return inputs_[u]; }

 private:
  SecAggServerConfig config_;
  std::vector<std::vector<uint64_t>> inputs_;
  std::unique_ptr<SecAggServer> server_;
  std::vector<std::unique_ptr<SecAggClient>> clients_;
  std::set<uint32_t> answered_;
};

TEST(SecAggHostileTest, ServerRefusesBadMessagesWithoutChangingTheRound) {
  Harness h(6, 3, 30);
  // Advertise keys.
  v1::SecAggClientMessage keys = h.Reply(1, h.Ask(1));
  v1::SecAggClientMessage bad = keys;
  bad.mutable_keys()->set_mask_key("too short");
  EXPECT_EQ(h.server().Receive(1, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = keys;
  bad.mutable_masked_input()->set_packed("x");  // the wrong stage's payload
  EXPECT_EQ(h.server().Receive(1, bad).code(), absl::StatusCode::kFailedPrecondition);
  bad = keys;
  bad.set_session_id("another-session");
  EXPECT_EQ(h.server().Receive(1, bad).code(), absl::StatusCode::kInvalidArgument);
  // Client 1's message delivered as client 2's, and a client outside the
  // round.
  EXPECT_EQ(h.server().Receive(2, keys).code(), absl::StatusCode::kPermissionDenied);
  bad = keys;
  bad.set_client_index(7);
  EXPECT_EQ(h.server().Receive(7, bad).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(h.server().num_answered(), 0u);
  ASSERT_TRUE(h.server().Receive(1, keys).ok());
  EXPECT_EQ(h.server().Receive(1, keys).code(), absl::StatusCode::kAlreadyExists)
      << "a replay is refused";
  h.MarkAnswered(1);
  h.Finish(/*skip=*/{6});  // client 6 drops before advertising keys
  EXPECT_EQ(h.server().Expected(), (std::vector<uint32_t>{1, 2, 3, 4, 5}));

  // Share keys: a replayed stage-0 message, a dropped client, a share for a
  // client that is not in the round, too few shares.
  EXPECT_EQ(h.server().Receive(1, keys).code(), absl::StatusCode::kFailedPrecondition);
  v1::SecAggClientMessage shares = h.Reply(2, h.Ask(2));
  v1::SecAggClientMessage outsider = shares;
  outsider.set_client_index(6);
  EXPECT_EQ(h.server().Receive(6, outsider).code(), absl::StatusCode::kFailedPrecondition);
  bad = shares;
  bad.mutable_shares()->mutable_shares(0)->set_peer(6);
  EXPECT_EQ(h.server().Receive(2, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = shares;
  bad.mutable_shares()->mutable_shares()->RemoveLast();
  EXPECT_EQ(h.server().Receive(2, bad).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(h.server().Receive(2, shares).ok());
  h.MarkAnswered(2);
  h.Finish();

  // Masked input: wrong size, a value outside the modulus.
  v1::SecAggClientMessage masked = h.Reply(3, h.Ask(3));
  bad = masked;
  bad.mutable_masked_input()->mutable_packed()->pop_back();
  EXPECT_EQ(h.server().Receive(3, bad).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(h.server().Receive(3, masked).ok());
  h.MarkAnswered(3);
  h.Finish(/*skip=*/{5});  // client 5 drops after sharing keys

  // Unmasking: client 1 reveals both shares of survivor 2 (the seed share it
  // was asked for, plus a key share it was not asked for).
  v1::SecAggClientMessage unmask = h.Reply(1, h.Ask(1));
  ASSERT_EQ(unmask.unmask().key_shares_size(), 1);  // of client 5
  bad = unmask;
  v1::SecAggRevealedShare* extra = bad.mutable_unmask()->add_key_shares();
  *extra = unmask.unmask().seed_shares(0);
  EXPECT_EQ(h.server().Receive(1, bad).code(), absl::StatusCode::kPermissionDenied);
  bad = unmask;
  bad.mutable_unmask()->mutable_seed_shares(0)->mutable_share()->RemoveLast();
  EXPECT_EQ(h.server().Receive(1, bad).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(h.server().Receive(1, unmask).ok());
  h.MarkAnswered(1);
  h.Finish();

  ASSERT_EQ(h.server().stage(), ServerStage::kDone);
  EXPECT_EQ(h.server().summed_clients(), (std::vector<uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(h.server().sum(), h.SumOf({1, 2, 3, 4}));
}

// Runs the first three stages honestly for everyone.
void ToUnmasking(Harness& h, const std::set<uint32_t>& drop_before_masking = {}) {
  h.Finish();
  h.Finish();
  h.Finish(drop_before_masking);
}

TEST(SecAggHostileTest, ClientRefusesToRevealBothSecretsOfOnePeer) {
  Harness h(5, 3, 10);
  ToUnmasking(h, {5});
  v1::SecAggServerMessage request = h.Ask(1);
  ASSERT_EQ(request.unmask().dropped_size(), 1);
  request.mutable_unmask()->add_dropped(2);  // 2 is also listed as a survivor
  absl::StatusOr<v1::SecAggClientMessage> reply = h.client(1).Handle(request);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(reply.status().message().find("refusing to reveal both"), std::string::npos);
  EXPECT_EQ(h.client(1).stage(), ClientStage::kAborted);
  // The honest request gets nothing either now: a caught server is not
  // answered again.
  EXPECT_EQ(h.client(1).Handle(h.Ask(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SecAggHostileTest, ClientRefusesAnUnmaskingOfTooFewSurvivors) {
  Harness h(5, 3, 10);
  ToUnmasking(h);
  v1::SecAggServerMessage request = h.Ask(1);
  request.mutable_unmask()->clear_survivors();
  request.mutable_unmask()->add_survivors(2);
  request.mutable_unmask()->add_dropped(3);
  request.mutable_unmask()->add_dropped(4);
  request.mutable_unmask()->add_dropped(5);
  // Would let the server unmask client 1 + 2's sum... and 3, 4, 5's keys.
  EXPECT_EQ(h.client(1).Handle(request).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h.client(1).stage(), ClientStage::kAborted);
}

TEST(SecAggHostileTest, ClientRefusesTamperedOrRedirectedShares) {
  Harness h(5, 3, 10);
  h.Finish();
  h.Finish();
  // Tampered in transit.
  v1::SecAggServerMessage shares = h.Ask(1);
  (*shares.mutable_shares()->mutable_shares(0)->mutable_sealed())[20] ^= 1;
  ASSERT_TRUE(h.client(1).SetInput(h.input(1)).ok());
  EXPECT_EQ(h.client(1).Handle(shares).status().code(), absl::StatusCode::kPermissionDenied);
  // Redirected: the pair client 3 sealed for client 1, handed to client 2
  // as if client 3 had sealed it for 2.
  v1::SecAggServerMessage for_one = h.Ask(1);
  v1::SecAggServerMessage for_two = h.Ask(2);
  for (int i = 0; i < for_two.shares().shares_size(); ++i) {
    if (for_two.shares().shares(i).peer() != 3) continue;
    for (const auto& share : for_one.shares().shares()) {
      if (share.peer() == 3) *for_two.mutable_shares()->mutable_shares(i) = share;
    }
  }
  ASSERT_TRUE(h.client(2).SetInput(h.input(2)).ok());
  EXPECT_EQ(h.client(2).Handle(for_two).status().code(), absl::StatusCode::kPermissionDenied);
  // Another session's message.
  v1::SecAggServerMessage foreign = h.Ask(3);
  foreign.set_session_id("other");
  ASSERT_TRUE(h.client(3).SetInput(h.input(3)).ok());
  EXPECT_EQ(h.client(3).Handle(foreign).status().code(), absl::StatusCode::kInvalidArgument);
  // The server's round goes on with the two clients that were not attacked.
  EXPECT_EQ(h.client(4).stage(), ClientStage::kAwaitShares);
}

TEST(SecAggHostileTest, ClientRefusesRepeatedKeysAndBadSetups) {
  Harness h(5, 3, 10);
  h.Finish();
  v1::SecAggServerMessage list = h.Ask(1);
  list.mutable_key_list()->mutable_peers(1)->set_mask_key(
      list.key_list().peers(0).mask_key());
  EXPECT_EQ(h.client(1).Handle(list).status().code(), absl::StatusCode::kInvalidArgument);

  v1::SecAggServerMessage setup = h.Ask(2);
  setup.mutable_setup()->set_threshold(0);  // bad, but the client is past setup
  SecAggClient fresh;
  EXPECT_EQ(fresh.Handle(setup).status().code(), absl::StatusCode::kInvalidArgument);
  SecAggClient self_neighbour;
  setup = h.Ask(2);
  setup.mutable_setup()->add_neighbours(2);
  EXPECT_EQ(self_neighbour.Handle(setup).status().code(), absl::StatusCode::kInvalidArgument);
  SecAggClient wrong_stage;
  EXPECT_EQ(wrong_stage.Handle(list).status().code(), absl::StatusCode::kFailedPrecondition)
      << "a key list before any setup";
}

TEST(SecAggHostileTest, ClientChecksItsInput) {
  Harness h(5, 3, 10);
  h.Finish();
  EXPECT_EQ(h.client(1).SetInput(std::vector<uint64_t>(9, 0)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.client(1).SetInput(std::vector<uint64_t>(10, kModulus)).code(),
            absl::StatusCode::kInvalidArgument);
  h.Finish();
  // The shares need the input first; asking without it aborts nothing.
  absl::StatusOr<v1::SecAggClientMessage> early = h.client(1).Handle(h.Ask(1));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h.client(1).stage(), ClientStage::kAwaitShares);
  ASSERT_TRUE(h.client(1).SetInput(h.input(1)).ok());
  EXPECT_TRUE(h.client(1).Handle(h.Ask(1)).ok());
}

}  // namespace
}  // namespace shoal::secagg
