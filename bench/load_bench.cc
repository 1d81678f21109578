// load_bench: N concurrent lightweight clients against one real server.
//
//   load_bench [--clients 1000] [--rounds 3] [--plaintext] [--model logreg]
//              [--fraction-evaluate 0.1] [--timeout-s 900] [--dir DIR]
//              [--keep-dir] [--shoal PATH] [--metrics]
//
// --metrics turns on the server's telemetry endpoint (server.metrics) and
// scrapes /metrics every second through the run, as Prometheus would, and
// reports the scrapes' response times and size: run once with and once
// without to see what the endpoint costs a round.
//
// Starts a real `shoal server` process on 127.0.0.1 (FedAvg, every client
// sampled every round, no test-set evaluation, mutual TLS from a PKI made
// for the run unless --plaintext), then N LoadClients in this process, each
// on its own thread with its own TCP connection and TLS identity. They
// answer fit tasks at once with a small deterministic update, so what is
// measured is the federation's own cost: connection setup, RPC latencies,
// round times, and the server's memory.
//
// Prints progress every 5 s, then tables, then one line
// "LOAD_JSON {...}" for docs/benchmarks.md, then PASS or FAIL. Exit code 0
// only when every round completed with all N clients, every client left
// cleanly and no RPC failed: the smoke test relies on it.
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/load_client.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/signing.h"
#include "common/status.h"
#include "common/tls.h"
#include "tests/subprocess.h"

namespace {

using nlohmann::json;
using shoal::bench::LatencySummary;
using shoal::bench::LoadClient;
using shoal::bench::LoadClientOptions;
using shoal::bench::LoadRecorder;

struct Flags {
  int clients = 1000;
  int rounds = 3;
  bool plaintext = false;
  std::string model = "logreg";
  double fraction_evaluate = 0.1;
  double timeout_s = 900;
  std::string dir;
  bool keep_dir = false;
  std::string shoal = SHOAL_BINARY;
  int stack_kib = 256;
  bool metrics = false;
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "load_bench: %s\nusage: load_bench [--clients N] [--rounds R] "
               "[--plaintext] "
               "[--model logreg|2nn] [--fraction-evaluate F] [--timeout-s S] "
               "[--dir DIR] "
               "[--keep-dir] [--shoal PATH]\n",
               error.c_str());
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--clients") {
      f.clients = std::atoi(value().c_str());
    } else if (a == "--rounds") {
      f.rounds = std::atoi(value().c_str());
    } else if (a == "--plaintext") {
      f.plaintext = true;
    } else if (a == "--model") {
      f.model = value();
    } else if (a == "--fraction-evaluate") {
      f.fraction_evaluate = std::atof(value().c_str());
    } else if (a == "--timeout-s") {
      f.timeout_s = std::atof(value().c_str());
    } else if (a == "--dir") {
      f.dir = value();
    } else if (a == "--keep-dir") {
      f.keep_dir = true;
    } else if (a == "--metrics") {
      f.metrics = true;
    } else if (a == "--shoal") {
      f.shoal = value();
    } else if (a == "--stack-kib") {
      f.stack_kib = std::atoi(value().c_str());
    } else {
      Usage("unknown flag " + a);
    }
  }
  if (f.clients < 1) Usage("--clients must be at least 1");
  if (f.rounds < 1) Usage("--rounds must be at least 1");
  if (f.model != "logreg" && f.model != "2nn")
    Usage("--model is logreg or 2nn");
  if (f.fraction_evaluate < 0 || f.fraction_evaluate > 1)
    Usage("--fraction-evaluate is in [0, 1]");
  if (f.stack_kib < 64) Usage("--stack-kib must be at least 64");
  return f;
}

// RaiseFileLimit lifts RLIMIT_NOFILE to its hard maximum (inherited by the
// server) and says whether `needed` descriptors fit: each side holds one
// socket per client.
bool RaiseFileLimit(rlim_t needed) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < needed) {
    std::fprintf(stderr,
                 "load_bench: RLIMIT_NOFILE is %llu (hard limit) but %llu "
                 "clients need about "
                 "%llu descriptors in this process and as many in the server; "
                 "raise the hard "
                 "limit (ulimit -Hn, /etc/security/limits.conf) or use fewer "
                 "--clients\n",
                 static_cast<unsigned long long>(lim.rlim_cur),
                 static_cast<unsigned long long>(needed - 256),
                 static_cast<unsigned long long>(needed));
    return false;
  }
  std::printf("RLIMIT_NOFILE: %llu (need ~%llu)\n",
              static_cast<unsigned long long>(lim.rlim_cur),
              static_cast<unsigned long long>(needed));
  return true;
}

// ProcSample: what /proc says about a process at one moment; -1 when the
// process is gone.
struct ProcSample {
  long rss_kib = -1, hwm_kib = -1, threads = -1;
  double cpu_s = -1;  // user + system time so far
};

ProcSample ReadProcStatus(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  ProcSample s;
  std::string line;
  auto field = [&](const char* key, long* out) {
    if (line.rfind(key, 0) == 0)
      *out = std::atol(line.c_str() + std::strlen(key));
  };
  while (std::getline(in, line)) {
    field("VmRSS:", &s.rss_kib);
    field("VmHWM:", &s.hwm_kib);
    field("Threads:", &s.threads);
  }
  // utime and stime are fields 14 and 15, counted after the ')' that ends
  // the command name (which may hold spaces).
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)),
                   std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream fields(text.substr(paren + 2));
    std::string skip;
    for (int i = 3; i < 14 && fields >> skip; ++i) {
    }
    long utime = 0, stime = 0;
    if (fields >> utime >> stime) {
      s.cpu_s = static_cast<double>(utime + stime) /
                static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  return s;
}

// StackBreakdown: how much of a process's RSS sits in thread stacks, found
// in /proc/PID/smaps as anonymous mappings of exactly the default stack
// size (RLIMIT_STACK; gRPC's and glibc's threads use it). A thread pool that
// grows one thread per waiting call shows up here.
struct StackBreakdown {
  long stacks = -1;
  long stack_rss_kib = -1;
};

StackBreakdown ReadStacks(const std::string& pid) {
  rlimit lim{};
  getrlimit(RLIMIT_STACK, &lim);
  const unsigned long stack_bytes =
      lim.rlim_cur == RLIM_INFINITY ? 8ul << 20
                                    : static_cast<unsigned long>(lim.rlim_cur);
  std::ifstream in("/proc/" + pid + "/smaps");
  StackBreakdown b;
  std::string line;
  bool in_stack = false;
  while (std::getline(in, line)) {
    unsigned long start = 0, end = 0;
    char perms[8] = {0};
    unsigned long inode = 0;
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %lu %n", &start, &end,
                    perms, &inode, &path_at) >= 4) {
      const bool anonymous =
          inode == 0 &&
          line.find_first_not_of(' ', path_at) == std::string::npos;
      in_stack = anonymous && perms[0] == 'r' && end - start == stack_bytes;
      if (in_stack) b.stacks = std::max(0l, b.stacks) + 1;
      continue;
    }
    if (in_stack && line.rfind("Rss:", 0) == 0) {
      b.stack_rss_kib =
          std::max(0l, b.stack_rss_kib) + std::atol(line.c_str() + 4);
    }
  }
  return b;
}

double MiB(long kib) {
  return kib < 0 ? -1 : static_cast<double>(kib) / 1024.0;
}

// Mark: moments of a run at which ProcessSampler keeps a sample of both
// processes.
enum Mark { kClientsStart, kAllConnected, kAllJoined, kRoundsDone, kNumMarks };

// ProcessSampler reads the server's and this process's /proc files every
// 100 ms on its own thread, keeping peaks, samples at each Mark, and the
// server's thread-stack memory when its thread count peaks. Thread-safe.
class ProcessSampler {
 public:
  ProcessSampler(pid_t server, const LoadRecorder* recorder, int64_t clients,
                 int rounds)
      : server_(std::to_string(server)),
        recorder_(recorder),
        clients_(clients),
        rounds_(rounds) {
    figures_.server_at[kClientsStart] = ReadProcStatus(server_);
    figures_.bench_at[kClientsStart] = ReadProcStatus("self");
    thread_ = std::thread([this] { Loop(); });
  }
  ~ProcessSampler() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  struct Figures {
    ProcSample server_at[kNumMarks], bench_at[kNumMarks];
    ProcSample server_last, bench_last;  // the server's while it was alive
    long server_peak_rss_kib = -1, server_peak_threads = -1,
         bench_peak_rss_kib = -1;
    StackBreakdown server_stacks_at_peak;
  };
  Figures figures() const {
    absl::MutexLock lock(&mu_);
    return figures_;
  }

 private:
  void Loop() {
    absl::MutexLock lock(&mu_);
    long stacks_threads = 0;  // the thread count when smaps was last read
    while (!stop_) {
      mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(100));
      const ProcSample server = ReadProcStatus(server_);
      const ProcSample self = ReadProcStatus("self");
      figures_.bench_last = self;
      figures_.bench_peak_rss_kib =
          std::max(figures_.bench_peak_rss_kib, self.rss_kib);
      if (server.rss_kib < 0) continue;
      figures_.server_last = server;
      figures_.server_peak_rss_kib =
          std::max(figures_.server_peak_rss_kib, server.rss_kib);
      if (server.threads > figures_.server_peak_threads) {
        figures_.server_peak_threads = server.threads;
        // smaps of a thousand threads takes milliseconds: again only when
        // the peak grew by a twentieth.
        if (server.threads * 20 > stacks_threads * 21) {
          figures_.server_stacks_at_peak = ReadStacks(server_);
          stacks_threads = server.threads;
        }
      }
      const bool reached[kNumMarks] = {
          true, recorder_->connected.load() >= clients_,
          recorder_->joined.load() >= clients_,
          recorder_->RoundsCompleted(clients_) >= rounds_};
      for (int m = 0; m < kNumMarks; ++m) {
        if (reached[m] && figures_.server_at[m].rss_kib < 0) {
          figures_.server_at[m] = server;
          figures_.bench_at[m] = self;
        }
      }
    }
  }

  const std::string server_;
  const LoadRecorder* recorder_;
  const int64_t clients_;
  const int rounds_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Figures figures_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// StartThread runs `fn` on a joinable thread with a `stack_bytes` stack: a
// thousand clients at glibc's default 8 MiB would reserve 8 GiB.
pthread_t StartThread(std::function<void()> fn, size_t stack_bytes) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  auto* heap_fn = new std::function<void()>(std::move(fn));
  pthread_t thread;
  const int err = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        std::unique_ptr<std::function<void()>> f(
            static_cast<std::function<void()>*>(arg));
        (*f)();
        return nullptr;
      },
      heap_fn);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    std::fprintf(stderr, "load_bench: pthread_create failed: %s\n",
                 std::strerror(err));
    std::exit(1);
  }
  return thread;
}

std::string ClientId(int i) { return absl::StrFormat("load-%05d", i); }

json ServerConfig(const Flags& f, const std::string& dir) {
  return {{"name", "load"},
          {"seed", 1},
          {"rounds", f.rounds},
          {"model", f.model},
          {"strategy",
           {{"name", "fedavg"}, {"fraction_evaluate", f.fraction_evaluate}}},
          {"sampling",
           {{"fraction_fit", 1.0},
            {"min_fit_clients", f.clients},
            {"min_available_clients", f.clients}}},
          // Generous: a round waits for every one of N clients, and the
          // first one for all N to connect and join.
          {"timeouts", {{"round_s", 600}, {"wait_for_clients_s", 600}}},
          {"server",
           {{"address", "127.0.0.1:0"},
            {"output_dir", dir + "/run"},
            {"evaluate", false},
            {"threads", 1}}}};
}

// MetricsPort finds the telemetry endpoint's port in the server's log line
// "metrics on http://127.0.0.1:N/metrics".
int MetricsPort(const shoal::testing::Subprocess& server) {
  const std::string log = server.Log();
  const std::string needle = "metrics on http://127.0.0.1:";
  const size_t at = log.find(needle);
  return at == std::string::npos ? 0 : std::atoi(log.c_str() + at + needle.size());
}

// ServerPort finds the port the server chose in its log line
// "... listening on port N".
int ServerPort(const shoal::testing::Subprocess& server) {
  const std::string log = server.Log();
  const std::string needle = "listening on port ";
  const size_t at = log.find(needle);
  return at == std::string::npos ? 0
                                 : std::atoi(log.c_str() + at + needle.size());
}

absl::StatusOr<std::vector<std::shared_ptr<grpc::ChannelCredentials>>>
MakeCredentials(const Flags& f, const std::string& pki) {
  std::vector<std::shared_ptr<grpc::ChannelCredentials>> creds;
  creds.reserve(f.clients);
  for (int i = 0; i < f.clients; ++i) {
    if (f.plaintext) {
      creds.push_back(grpc::InsecureChannelCredentials());
      continue;
    }
    SHOAL_ASSIGN_OR_RETURN(
        shoal::TlsMaterial tls,
        shoal::LoadClientTls(pki + "/clients/" + ClientId(i)));
    creds.push_back(shoal::MakeChannelCredentials(&tls));
  }
  return creds;
}

void PrintLatencies(const std::map<std::string, LatencySummary>& latencies) {
  std::printf("\n%-16s %7s %9s %9s %9s %9s\n", "RPC (ms)", "count", "p50",
              "p90", "p99", "max");
  for (const auto& [rpc, s] : latencies) {
    std::printf("%-16s %7lld %9.2f %9.2f %9.2f %9.2f\n", rpc.c_str(),
                static_cast<long long>(s.count), s.p50, s.p90, s.p99, s.max);
  }
}

int Run(const Flags& f) {
  if (!RaiseFileLimit(static_cast<rlim_t>(f.clients) + 256)) return 2;
  std::string dir = f.dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/shoal-load-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::perror("load_bench: mkdtemp");
      return 2;
    }
    dir = tmpl;
  }
  std::filesystem::create_directories(dir);
  std::printf("load_bench: %d clients, %d rounds, model %s, %s, work dir %s\n",
              f.clients, f.rounds, f.model.c_str(),
              f.plaintext ? "PLAINTEXT" : "mutual TLS", dir.c_str());
  std::fflush(stdout);

  // The PKI: one CA, the server's identity, one bundle per client.
  const std::string pki = dir + "/pki";
  double pki_s = 0;
  if (!f.plaintext) {
    const absl::Time start = absl::Now();
    shoal::PkiOptions options;
    options.force = true;
    std::vector<std::string> ids;
    for (int i = 0; i < f.clients; ++i) ids.push_back(ClientId(i));
    absl::Status made = shoal::InitPki(pki, options);
    if (made.ok()) made = shoal::IssueClients(pki, ids, options, nullptr);
    if (!made.ok()) {
      std::fprintf(stderr, "load_bench: PKI: %s\n", made.ToString().c_str());
      return 1;
    }
    pki_s = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf("PKI: CA, server and %d client bundles in %.1f s\n", f.clients,
                pki_s);
  }
  // Every device checks the model's signature before it uses it; in a
  // plaintext run the server signs nothing.
  std::shared_ptr<const shoal::ModelVerifier> verifier;
  if (!f.plaintext) {
    absl::StatusOr<std::shared_ptr<const shoal::ModelVerifier>> loaded =
        shoal::ModelVerifier::Load(pki + "/server/model-signing.pub");
    if (!loaded.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    verifier = *std::move(loaded);
  }
  absl::StatusOr<std::vector<std::shared_ptr<grpc::ChannelCredentials>>> creds =
      MakeCredentials(f, pki);
  if (!creds.ok()) {
    std::fprintf(stderr, "load_bench: client credentials: %s\n",
                 creds.status().ToString().c_str());
    return 1;
  }

  const std::string config_path = dir + "/config.json";
  if (absl::Status w =
          shoal::WriteFileAtomically(config_path, ServerConfig(f, dir).dump(2));
      !w.ok()) {
    std::fprintf(stderr, "load_bench: %s\n", w.ToString().c_str());
    return 1;
  }
  if (f.metrics) {
    json config = ServerConfig(f, dir);
    config["server"]["metrics"] = {{"listen", "127.0.0.1:0"}};
    if (absl::Status w = shoal::WriteFileAtomically(config_path, config.dump(2)); !w.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", w.ToString().c_str());
      return 1;
    }
  }
  std::vector<std::string> argv = {f.shoal, "server", "--config", config_path};
  if (f.plaintext) {
    argv.push_back("--insecure-plaintext");
  } else {
    argv.insert(argv.end(), {"--pki-dir", pki + "/server"});
  }
  shoal::testing::Subprocess server(argv, dir + "/server.log");
  // Up to 2 minutes for LibTorch to load on a busy machine, but not a
  // moment longer than the server lives.
  for (const absl::Time give_up = absl::Now() + absl::Minutes(2);
       ServerPort(server) == 0 && server.Wait(absl::ZeroDuration()) < 0 &&
       absl::Now() < give_up;) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (ServerPort(server) == 0) {
    std::fprintf(stderr,
                 "load_bench: the server did not start (%s); its log:\n%s\n",
                 argv[0].c_str(), server.Log().c_str());
    return 1;
  }
  const std::string address = absl::StrCat("127.0.0.1:", ServerPort(server));
  const ProcSample idle = ReadProcStatus(std::to_string(server.pid()));
  std::printf("server pid %d on %s, idle RSS %.1f MiB\n", server.pid(),
              address.c_str(), MiB(idle.rss_kib));
  std::fflush(stdout);

  LoadRecorder recorder;
  std::atomic<bool> stop{false};
  // --metrics: a scraper, once a second, as Prometheus would.
  std::atomic<bool> scraping{f.metrics};
  std::vector<double> scrape_ms;
  size_t scrape_bytes = 0;
  int scrape_errors = 0;
  std::thread scraper;
  if (f.metrics) {
    const int port = MetricsPort(server);
    if (port == 0) {
      std::fprintf(stderr, "load_bench: no metrics endpoint in the server's log\n");
      return 1;
    }
    scraper = std::thread([&, port] {
      httplib::Client http("127.0.0.1", port);
      while (scraping.load()) {
        const absl::Time t0 = absl::Now();
        httplib::Result r = http.Get("/metrics");
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
        if (r && r->status == 200) {
          scrape_ms.push_back(ms);
          scrape_bytes = r->body.size();
        } else {
          ++scrape_errors;
        }
        absl::SleepFor(absl::Seconds(1) - (absl::Now() - t0));
      }
    });
  }
  ProcessSampler sampler(server.pid(), &recorder, f.clients, f.rounds);
  std::vector<absl::Status> results(f.clients);
  std::vector<pthread_t> threads;
  const absl::Time start = absl::Now();
  absl::Time all_connected = absl::InfiniteFuture();
  for (int i = 0; i < f.clients; ++i) {
    LoadClientOptions options;
    options.server_address = address;
    options.client_id = ClientId(i);
    options.index = i;
    options.credentials = (*creds)[i];
    options.model_verifier = verifier;
    threads.push_back(StartThread(
        [options, &recorder, &stop, &results, i] {
          LoadClient client(options, &recorder, &stop);
          results[i] = client.Run();
          if (!results[i].ok()) ++recorder.failed;
        },
        static_cast<size_t>(f.stack_kib) << 10));
  }
  creds->clear();

  // Wait for the clients, printing progress; stop them if the server dies
  // or the run overstays --timeout-s.
  absl::Time next_report = start + absl::Seconds(5);
  absl::Time server_gone = absl::InfiniteFuture();
  for (;;) {
    absl::SleepFor(absl::Milliseconds(50));
    const absl::Time now = absl::Now();
    if (all_connected == absl::InfiniteFuture() &&
        recorder.connected.load() >= f.clients) {
      all_connected = now;
    }
    if (recorder.finished.load() + recorder.failed.load() >= f.clients) break;
    if (server_gone == absl::InfiniteFuture() &&
        server.Wait(absl::ZeroDuration()) >= 0) {
      server_gone = now;
    }
    if (now > server_gone + absl::Seconds(5) && !stop.load()) {
      std::fprintf(
          stderr,
          "load_bench: the server exited (code %d) before every client left\n",
          server.Wait(absl::ZeroDuration()));
      stop.store(true);
    }
    if (now > start + absl::Seconds(f.timeout_s) && !stop.load()) {
      std::fprintf(stderr, "load_bench: --timeout-s %.0f passed; stopping\n",
                   f.timeout_s);
      stop.store(true);
      server.Kill(SIGTERM);
    }
    if (now >= next_report) {
      next_report += absl::Seconds(5);
      const ProcessSampler::Figures mem = sampler.figures();
      std::printf(
          "[%5.0f s] connected %lld/%d, joined %lld, rounds done %d/%d, left "
          "%lld, "
          "failed %lld | server RSS %.1f MiB, %ld threads\n",
          absl::ToDoubleSeconds(now - start),
          static_cast<long long>(recorder.connected.load()), f.clients,
          static_cast<long long>(recorder.joined.load()),
          recorder.RoundsCompleted(f.clients), f.rounds,
          static_cast<long long>(recorder.finished.load()),
          static_cast<long long>(recorder.failed.load()),
          MiB(mem.server_last.rss_kib), mem.server_last.threads);
      std::fflush(stdout);
    }
  }
  const absl::Time clients_done = absl::Now();
  scraping.store(false);
  if (scraper.joinable()) scraper.join();
  for (pthread_t t : threads) pthread_join(t, nullptr);
  const int server_exit = server.Wait(absl::Seconds(60));
  const ProcessSampler::Figures mem = sampler.figures();

  // ---------------------------------------------------------------- report
  std::vector<std::string> problems;
  if (server_exit != 0)
    problems.push_back(absl::StrCat("server exit code ", server_exit));
  int failed_clients = 0;
  for (int i = 0; i < f.clients; ++i) {
    if (results[i].ok()) continue;
    if (++failed_clients <= 5) {
      std::fprintf(stderr, "client %s: %s\n", ClientId(i).c_str(),
                   results[i].ToString().c_str());
    }
  }
  if (failed_clients > 0)
    problems.push_back(absl::StrCat(failed_clients, " clients failed"));

  json history;
  if (absl::StatusOr<std::string> text =
          shoal::ReadFile(dir + "/run/metrics.json");
      text.ok()) {
    history = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  }
  const std::map<uint32_t, shoal::bench::RoundSpan> spans = recorder.Rounds();
  json rounds = json::array();
  std::printf("\n%-6s %8s %9s %11s %12s %12s\n", "round", "answered",
              "server s", "fit phase s", "fan-out ms", "server note");
  int completed = 0;
  if (history.is_object() && history.contains("rounds")) {
    for (const json& r : history["rounds"]) {
      const int round = r.value("round", 0);
      if (round == 0) continue;  // the initial model, no clients involved
      const int answered = r.value("answered", 0);
      const bool full = answered == f.clients && r.value("failed", 0) == 0;
      completed += full ? 1 : 0;
      double fit_s = -1, fanout_ms = -1;
      if (auto it = spans.find(static_cast<uint32_t>(round));
          it != spans.end()) {
        fit_s = absl::ToDoubleSeconds(it->second.last_submit -
                                      it->second.first_task);
        fanout_ms = absl::ToDoubleMilliseconds(it->second.last_task -
                                               it->second.first_task);
      }
      std::printf("%-6d %4d/%-4d %9.2f %11.2f %12.1f %s\n", round, answered,
                  r.value("sampled", 0), r.value("seconds", 0.0), fit_s,
                  fanout_ms, r.value("note", std::string()).c_str());
      rounds.push_back({{"round", round},
                        {"answered", answered},
                        {"server_s", r.value("seconds", 0.0)},
                        {"fit_phase_s", fit_s},
                        {"fanout_ms", fanout_ms}});
    }
  }
  if (completed < f.rounds) {
    problems.push_back(absl::StrCat(completed, " of ", f.rounds,
                                    " rounds completed with all ", f.clients,
                                    " clients"));
  }

  const std::map<std::string, LatencySummary> latencies = recorder.Latencies();
  PrintLatencies(latencies);
  json rpc = json::object();
  for (const auto& [name, s] : latencies) {
    rpc[name] = {{"count", s.count},
                 {"p50_ms", s.p50},
                 {"p90_ms", s.p90},
                 {"p99_ms", s.p99},
                 {"max_ms", s.max}};
  }
  for (const char* needed : {"Connect", "Join", "Poll (fit)", "DownloadModel",
                             "SubmitFit", "Leave"}) {
    if (!rpc.contains(needed))
      problems.push_back(absl::StrCat("no ", needed, " latencies"));
  }
  const std::map<std::string, int64_t> errors = recorder.Errors();
  json errors_json = json::object();
  for (const auto& [what, count] : errors) {
    errors_json[what] = count;
    std::printf("errors: %-30s %lld\n", what.c_str(),
                static_cast<long long>(count));
  }
  if (!errors.empty()) problems.push_back("RPC errors (listed above)");

  const double connect_all_s =
      all_connected == absl::InfiniteFuture()
          ? -1
          : absl::ToDoubleSeconds(all_connected - start);
  const long joined_delta_kib =
      mem.server_at[kAllJoined].rss_kib - idle.rss_kib;
  // CPU seconds between two marks (or the last sample), -1 when unknown.
  auto cpu = [](const ProcSample* at, const ProcSample& last, int from,
                int to) {
    const ProcSample& end = to < kNumMarks ? at[to] : last;
    return at[from].cpu_s < 0 || end.cpu_s < 0 ? -1.0
                                               : end.cpu_s - at[from].cpu_s;
  };
  const double client_rounds = static_cast<double>(f.clients) * f.rounds;
  const json cpu_json = {
      {"server_connect_s",
       cpu(mem.server_at, mem.server_last, kClientsStart, kAllConnected)},
      {"server_rounds_s",
       cpu(mem.server_at, mem.server_last, kAllJoined, kRoundsDone)},
      {"server_total_s",
       cpu(mem.server_at, mem.server_last, kClientsStart, kNumMarks)},
      {"bench_connect_s",
       cpu(mem.bench_at, mem.bench_last, kClientsStart, kAllConnected)},
      {"bench_rounds_s",
       cpu(mem.bench_at, mem.bench_last, kAllJoined, kRoundsDone)},
      {"bench_total_s",
       cpu(mem.bench_at, mem.bench_last, kClientsStart, kNumMarks)}};
  std::printf("\nconnection setup: all %d connected %s in %.2f s\n", f.clients,
              f.plaintext ? "(plaintext)"
                          : "(TCP + TLS 1.3 handshake, client certificate)",
              connect_all_s);
  std::printf(
      "CPU s (user + system): server %.2f connecting (%.2f ms a client), %.2f "
      "in the "
      "rounds (%.2f ms a client-round), %.2f in all; bench %.2f connecting, "
      "%.2f in "
      "the rounds, %.2f in all\n",
      cpu_json["server_connect_s"].get<double>(),
      1e3 * cpu_json["server_connect_s"].get<double>() / f.clients,
      cpu_json["server_rounds_s"].get<double>(),
      1e3 * cpu_json["server_rounds_s"].get<double>() / client_rounds,
      cpu_json["server_total_s"].get<double>(),
      cpu_json["bench_connect_s"].get<double>(),
      cpu_json["bench_rounds_s"].get<double>(),
      cpu_json["bench_total_s"].get<double>());
  std::printf(
      "server RSS MiB: idle %.1f, all joined %.1f (%.1f KiB per client), peak "
      "%.1f, "
      "after the last round %.1f, VmHWM %.1f\n",
      MiB(idle.rss_kib), MiB(mem.server_at[kAllJoined].rss_kib),
      static_cast<double>(joined_delta_kib) / f.clients,
      MiB(mem.server_peak_rss_kib), MiB(mem.server_at[kRoundsDone].rss_kib),
      MiB(mem.server_last.hwm_kib));
  std::printf(
      "server threads: peak %ld; at the peak %ld thread stacks held %.1f MiB "
      "RSS\n",
      mem.server_peak_threads, mem.server_stacks_at_peak.stacks,
      MiB(mem.server_stacks_at_peak.stack_rss_kib));
  std::printf("bench RSS MiB: peak %.1f (%d clients in-process)\n",
              MiB(mem.bench_peak_rss_kib), f.clients);
  std::printf("wall: clients started to all left %.1f s\n",
              absl::ToDoubleSeconds(clients_done - start));

  json scrapes = nullptr;
  if (f.metrics) {
    std::sort(scrape_ms.begin(), scrape_ms.end());
    auto at = [&](double q) {
      return scrape_ms.empty() ? 0.0
                               : scrape_ms[std::min(scrape_ms.size() - 1,
                                                    static_cast<size_t>(q * scrape_ms.size()))];
    };
    std::printf("metrics endpoint: %zu scrapes (%d failed), response p50 %.2f ms, p99 %.2f ms, "
                "max %.2f ms, %zu bytes\n",
                scrape_ms.size(), scrape_errors, at(0.5), at(0.99),
                scrape_ms.empty() ? 0.0 : scrape_ms.back(), scrape_bytes);
    scrapes = {{"count", scrape_ms.size()}, {"failed", scrape_errors}, {"p50_ms", at(0.5)},
               {"p99_ms", at(0.99)}, {"bytes", scrape_bytes}};
    if (scrape_errors > 0) problems.push_back("a scrape of /metrics failed");
  }
  json out = {{"clients", f.clients},
              {"metrics_scrapes", scrapes},
              {"rounds", f.rounds},
              {"model", f.model},
              {"tls", !f.plaintext},
              {"fraction_evaluate", f.fraction_evaluate},
              {"pki_s", pki_s},
              {"connect_all_s", connect_all_s},
              {"wall_s", absl::ToDoubleSeconds(clients_done - start)},
              {"round", rounds},
              {"rpc", rpc},
              {"errors", errors_json},
              {"server_rss_mib",
               {{"idle", MiB(idle.rss_kib)},
                {"all_joined", MiB(mem.server_at[kAllJoined].rss_kib)},
                {"peak", MiB(mem.server_peak_rss_kib)},
                {"after_rounds", MiB(mem.server_at[kRoundsDone].rss_kib)},
                {"hwm", MiB(mem.server_last.hwm_kib)}}},
              {"server_kib_per_client",
               static_cast<double>(joined_delta_kib) / f.clients},
              {"server_threads_peak", mem.server_peak_threads},
              {"server_stacks_at_peak",
               {{"count", mem.server_stacks_at_peak.stacks},
                {"rss_mib", MiB(mem.server_stacks_at_peak.stack_rss_kib)}}},
              {"cpu", cpu_json},
              {"bench_rss_peak_mib", MiB(mem.bench_peak_rss_kib)},
              {"ok", problems.empty()}};
  std::printf("\nLOAD_JSON %s\n", out.dump().c_str());

  // A failed run keeps its server log and metrics for a look.
  if (problems.empty() && !f.keep_dir && f.dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  } else {
    std::printf("kept %s (server.log, run/metrics.json, pki/)\n", dir.c_str());
  }
  if (problems.empty()) {
    std::printf("PASS: %d rounds with all %d clients\n", f.rounds, f.clients);
    return 0;
  }
  std::printf("FAIL:");
  for (const std::string& p : problems) std::printf(" %s;", p.c_str());
  std::printf("\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) { return Run(ParseFlags(argc, argv)); }
