// The whole SecAgg+ protocol in one process: a SecAggServer and n
// SecAggClients exchanging real messages (real X25519, AES-GCM, Shamir,
// AES-CTR masks), with clients dropping out at every stage, a server's view
// recorded byte for byte, and hostile messages from both sides.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "secagg/client.h"
#include "secagg/crypto.h"
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

}  // namespace
}  // namespace shoal::secagg
