// secagg_bench: the cost of a SecAgg+ round, without training, set beside
// the same round in the clear, in one run.
//
// One process plays the server and n clients with real messages and real
// crypto (secagg/server.h, secagg/client.h). A fraction of the clients
// drops after sharing keys (before sending masked inputs), as in Bonawitz et
// al. 2017's figures, which is the expensive case for the server: it must
// rebuild each dropped client's mask key and remove its pairwise masks.
//
//   build/bench/secagg_bench                       # the sweep of docs/benchmarks.md
//   build/bench/secagg_bench --clients 500 --length 100000 --dropout 0.3 \
//       [--graph derived|complete] [--threads 2]
//
// Client time: a client's own computation over all stages (key generation,
// agreements, sharing, encoding, masking), averaged over the clients that
// finished. Server time: everything the server does (building messages,
// taking answers, closing stages, unmasking), single-threaded unless
// --server-threads spreads the unmasking. The plain
// round: a client serializes its update, the server parses and folds every
// update (float64 weighted sum). Bytes: what one client sends, against the
// plain update's wire size.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/parameters.h"
#include "secagg/client.h"
#include "secagg/crypto.h"
#include "secagg/graph.h"
#include "secagg/server.h"
#include "secagg/update_codec.h"
#include "secagg/wire.h"

namespace shoal::secagg {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Config {
  uint32_t clients = 500;
  uint64_t length = 100000;
  double dropout = 0;
  bool complete = false;
  int threads = 2;         // clients run this many at a time
  int server_threads = 1;  // the server's unmasking
};

struct Figures {
  uint32_t degree = 0, threshold = 0;
  double client_s = 0, server_s = 0;
  double plain_client_s = 0, plain_server_s = 0;
  double client_sent = 0, client_received = 0, plain_bytes = 0;
  size_t summed = 0;
  bool correct = false;
};

void Die(const absl::Status& status) {
  std::fprintf(stderr, "secagg_bench: %s\n", std::string(status.message()).c_str());
  std::exit(1);
}

Parameters RandomUpdate(uint64_t length, uint64_t seed) {
  at::manual_seed(static_cast<int64_t>(seed));
  Parameters p;
  p.Add("w", at::randn({static_cast<int64_t>(length)}) * 0.01);
  return p;
}

Figures RunOne(const Config& cfg) {
  Figures f;
  const uint32_t n = cfg.clients;
  GraphOptions graph_options;
  // The graph is sized for the dropout it must survive, with at least 10 %.
  graph_options.dropout_rate = std::max(0.1, cfg.dropout);
  GraphParameters params;
  if (cfg.complete) {
    params = {n - 1, (n - 1) / 2 + 1, true};
  } else {
    absl::StatusOr<GraphParameters> chosen = ChooseGraphParameters(n, graph_options);
    if (!chosen.ok()) Die(chosen.status());
    params = *chosen;
  }
  f.degree = params.degree;
  f.threshold = params.threshold;
  absl::StatusOr<Bytes> seed = RandomBytes(kKeySize);
  auto graph = MakeNeighbourGraph(n, params.degree, *seed);
  if (!graph.ok()) Die(graph.status());
  UpdateEncoding encoding;
  encoding.max_weight = 1000;
  SecAggServerConfig config;
  config.session_id = *NewSessionId();
  config.neighbours = *std::move(graph);
  config.threshold = params.threshold;
  config.vector_length = cfg.length + 1;
  config.modulus = encoding.values.modulus;
  config.encoding = encoding.ToProto();
  config.parallel_for = [](size_t tasks, const std::function<void(size_t)>& run) {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < tasks; ++i) threads.emplace_back(run, i);
    run(0);
    for (std::thread& t : threads) t.join();
  };
  config.parallelism = static_cast<size_t>(cfg.server_threads);

  // Who drops after sharing keys.
  std::vector<uint8_t> drops(n + 1, 0);
  {
    std::mt19937_64 rng(n * 1000 + static_cast<uint64_t>(cfg.dropout * 100));
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; ++i) order[i] = i + 1;
    std::shuffle(order.begin(), order.end(), rng);
    const uint32_t k = static_cast<uint32_t>(cfg.dropout * n + 0.5);
    for (uint32_t i = 0; i < k; ++i) drops[order[i]] = 1;
  }

  auto server_start = Clock::now();
  double server_s = 0;
  absl::StatusOr<std::unique_ptr<SecAggServer>> created = SecAggServer::Create(config);
  if (!created.ok()) Die(created.status());
  SecAggServer& server = **created;
  server_s += Seconds(server_start, Clock::now());

  std::vector<std::unique_ptr<SecAggClient>> clients(n + 1);
  for (uint32_t u = 1; u <= n; ++u) clients[u] = std::make_unique<SecAggClient>();
  std::vector<double> client_s(n + 1, 0), sent(n + 1, 0), received(n + 1, 0);
  std::vector<uint64_t> plain_sum(cfg.length + 1, 0);
  absl::Mutex plain_mu;

  while (!server.finished()) {
    const bool masking = server.stage() == ServerStage::kCollectMaskedInputs;
    auto t0 = Clock::now();
    std::vector<uint32_t> asked = server.Expected();
    std::vector<v1::SecAggServerMessage> out(asked.size());
    for (size_t i = 0; i < asked.size(); ++i) out[i] = *server.MessageFor(asked[i]);
    server_s += Seconds(t0, Clock::now());
    std::vector<std::optional<v1::SecAggClientMessage>> replies(asked.size());
    std::atomic<size_t> next{0};
    auto work = [&]() {
      for (size_t i = next++; i < asked.size(); i = next++) {
        const uint32_t u = asked[i];
        if (masking && drops[u]) continue;  // vanishes after sharing keys
        received[u] += static_cast<double>(out[i].ByteSizeLong());
        auto c0 = Clock::now();
        if (masking) {
          Parameters update = RandomUpdate(cfg.length, u);
          auto c1 = Clock::now();  // the update is given, not computed
          absl::StatusOr<std::vector<uint64_t>> codes = EncodeUpdate(update, 600, encoding);
          if (!codes.ok()) Die(codes.status());
          {
            absl::MutexLock lock(&plain_mu);
            AddInto(plain_sum, *codes, config.modulus);
          }
          if (absl::Status s = clients[u]->SetInput(*std::move(codes)); !s.ok()) Die(s);
          c0 = c1;
        }
        absl::StatusOr<v1::SecAggClientMessage> reply = clients[u]->Handle(out[i]);
        client_s[u] += Seconds(c0, Clock::now());
        if (!reply.ok()) Die(reply.status());
        sent[u] += static_cast<double>(reply->ByteSizeLong());
        replies[i] = *std::move(reply);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < cfg.threads; ++t) pool.emplace_back(work);
    for (auto& t : pool) t.join();
    auto t1 = Clock::now();
    for (size_t i = 0; i < asked.size(); ++i) {
      if (!replies[i]) continue;
      if (absl::Status s = server.Receive(asked[i], *replies[i]); !s.ok()) Die(s);
    }
    if (absl::Status s = server.Advance(); !s.ok()) Die(s);
    server_s += Seconds(t1, Clock::now());
  }
  f.server_s = server_s;
  f.summed = server.summed_clients().size();
  // Correct when the unmasked sum is the plain sum of the survivors' codes.
  f.correct = server.sum() == plain_sum;
  double total = 0, bytes_out = 0, bytes_in = 0;
  for (uint32_t u = 1; u <= n; ++u) {
    if (drops[u]) continue;
    total += client_s[u];
    bytes_out += sent[u];
    bytes_in += received[u];
  }
  const double finished = static_cast<double>(f.summed);
  f.client_s = total / finished;
  f.client_sent = bytes_out / finished;
  f.client_received = bytes_in / finished;

  // The same round in the clear.
  const size_t plain_n = n - static_cast<size_t>(std::count(drops.begin(), drops.end(), 1));
  at::Tensor sum = at::zeros({static_cast<int64_t>(cfg.length)}, at::kDouble);
  double plain_client = 0, plain_server = 0;
  for (size_t i = 0; i < plain_n; ++i) {
    Parameters update = RandomUpdate(cfg.length, i + 1);
    auto c0 = Clock::now();
    const std::string wire = SerializeParameters(update);
    auto c1 = Clock::now();
    absl::StatusOr<Parameters> parsed = ParseParameters(wire);
    if (!parsed.ok()) Die(parsed.status());
    sum.add_(parsed->tensor(0).to(at::kDouble), 600);
    auto c2 = Clock::now();
    plain_client += Seconds(c0, c1);
    plain_server += Seconds(c1, c2);
    f.plain_bytes = static_cast<double>(wire.size());
  }
  f.plain_client_s = plain_client / static_cast<double>(plain_n);
  f.plain_server_s = plain_server;
  return f;
}

void Print(const Config& cfg, const Figures& f) {
  std::printf(
      "clients %5u  length %7llu  dropout %3.0f%%  %s k %4u t %4u | client %8.1f ms (plain "
      "%6.3f ms, x%6.0f) | server %8.2f s (plain %6.3f s, x%6.0f) | client sends %8.1f KiB "
      "(plain %7.1f KiB, x%.2f), receives %7.1f KiB | %s\n",
      cfg.clients, static_cast<unsigned long long>(cfg.length), 100 * cfg.dropout,
      cfg.complete ? "complete" : "SecAgg+ ", f.degree, f.threshold, 1e3 * f.client_s,
      1e3 * f.plain_client_s, f.client_s / f.plain_client_s, f.server_s, f.plain_server_s,
      f.server_s / f.plain_server_s, f.client_sent / 1024, f.plain_bytes / 1024,
      f.client_sent / f.plain_bytes, f.client_received / 1024,
      f.correct ? "sum correct" : "SUM WRONG");
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  at::set_num_threads(1);
  Config one;
  bool sweep = true;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : "";
    bool ok = true;
    if (flag == "--clients") {
      ok = absl::SimpleAtoi(value, &one.clients) && one.clients >= 2;
    } else if (flag == "--length") {
      ok = absl::SimpleAtoi(value, &one.length) && one.length >= 1;
    } else if (flag == "--dropout") {
      ok = absl::SimpleAtod(value, &one.dropout) && one.dropout >= 0 && one.dropout < 0.5;
    } else if (flag == "--graph") {
      ok = std::string(value) == "complete" || std::string(value) == "derived";
      one.complete = std::string(value) == "complete";
    } else if (flag == "--threads") {
      ok = absl::SimpleAtoi(value, &one.threads) && one.threads >= 1;
    } else if (flag == "--server-threads") {
      ok = absl::SimpleAtoi(value, &one.server_threads) && one.server_threads >= 1;
    } else {
      std::fprintf(stderr,
                   "usage: secagg_bench [--clients N] [--length L] [--dropout F] "
                   "[--graph derived|complete] [--threads T] [--server-threads S]\n");
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "secagg_bench: bad value '%s' for %s\n", value, flag.c_str());
      return 2;
    }
    sweep = false;
    ++i;
  }
  if (!sweep) {
    Print(one, RunOne(one));
    return 0;
  }
  for (uint32_t n : {100u, 500u, 1000u}) {
    for (double d : {0.0, 0.1, 0.3}) {
      Config c = one;
      c.clients = n;
      c.dropout = d;
      Print(c, RunOne(c));
    }
  }
  return 0;
}

}  // namespace
}  // namespace shoal::secagg

int main(int argc, char** argv) { return shoal::secagg::Main(argc, argv); }
