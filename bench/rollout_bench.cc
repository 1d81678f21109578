// rollout_bench: how long a promoted serving version takes to reach a whole
// fleet on loopback (issue 16). A real FederationService on 127.0.0.1 with
// a serving catalog, and N agents in this process, each with a serving
// runtime that judges every version on 50 held-out examples before it
// takes it; the devices only long-poll (no run trains). Promotions and a
// rollback are timed from the call until every device reports serving the
// new version.
//
// Usage: rollout_bench [--devices 20] [--poll-wait-ms 10000]
// --poll-wait-ms is the server's long-poll wait (the default is the real
// server's): a device hears of a new version when its poll returns.
#include <ATen/ATen.h>

#include <filesystem>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/agent.h"
#include "client/local_client.h"
#include "client/serving_runtime.h"
#include "client/trainer.h"
#include "common/files.h"
#include "common/sha256.h"
#include "server/client_manager.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "server/serving_catalog.h"

namespace {

using namespace shoal;
constexpr char kSpec[] = "logreg-1x28x28-10";

client::Dataset Random(int64_t n, int64_t seed) {
  at::manual_seed(seed);
  return {at::rand({n, 1, 28, 28}), at::randint(0, 10, {n}, at::kLong)};
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 20;
  int64_t poll_wait_ms = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--devices") devices = std::atoi(argv[i + 1]);
    else if (flag == "--poll-wait-ms") poll_wait_ms = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: rollout_bench [--devices N] [--poll-wait-ms MS]\n");
      return 2;
    }
  }
  client::SetComputeThreads(1);
  char tmpl[] = "/tmp/rollout_bench.XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto keys = *GenerateModelSigningKey();
  std::shared_ptr<const ModelSigner> signer = *ModelSigner::FromPem(keys.private_pem);
  std::shared_ptr<const ModelVerifier> verifier = *ModelVerifier::FromPem(keys.public_pem);
  std::unique_ptr<ServingCatalog> catalog =
      *ServingCatalog::Open({dir + "/serving", signer, verifier, 20});
  // Runs to promote: version 0 of a model store each.
  auto run = [&](const std::string& name, uint64_t seed) {
    std::unique_ptr<ModelStore> store = *ModelStore::Open(dir + "/" + name, kSpec, signer);
    Parameters p = (*client::CreateModel(*client::ParseModelSpec(kSpec), seed))->GetParameters();
    (void)store->Save(0, p, {});
    return dir + "/" + name;
  };
  std::unique_ptr<ModelStore> store = *ModelStore::Open(dir + "/run", kSpec, signer);
  ClientManager clients;
  FederationServiceOptions options;
  options.max_poll_wait = absl::Milliseconds(poll_wait_ms);
  options.run_id = "bench";
  options.access.require_certificate = false;
  options.serving = catalog.get();
  FederationService service(options, &clients, store.get());
  std::unique_ptr<GrpcServer> server = *GrpcServer::Start("127.0.0.1:0", &service, nullptr);
  const std::string address = absl::StrCat("127.0.0.1:", server->port());

  std::vector<std::unique_ptr<client::LocalClient>> locals;
  std::vector<std::unique_ptr<client::ServingRuntime>> runtimes;
  std::vector<std::unique_ptr<client::Agent>> agents;
  std::vector<std::thread> threads;
  for (int d = 0; d < devices; ++d) {
    locals.push_back(std::make_unique<client::LocalClient>(
        *client::CreateModel(*client::ParseModelSpec(kSpec), 1), *client::Trainer::Create({}),
        Random(10, d), client::Dataset{}));
    client::ServingRuntimeOptions serving;
    serving.store = {absl::StrCat(dir, "/device-", d), verifier, 2};
    serving.guard.margin = 1.0;  // random models: judged, never refused
    runtimes.push_back(*client::ServingRuntime::Open(serving, client::InMemory(Random(50, 100 + d))));
    client::AgentOptions agent;
    agent.server_address = address;
    agent.client_id = absl::StrCat("device-", d);
    agent.model_code = {kSpec, ""};
    agent.model_verifier = verifier;
    agent.serving = runtimes.back().get();
    agents.push_back(std::make_unique<client::Agent>(agent, locals.back().get()));
  }
  for (auto& a : agents) threads.emplace_back([&a] { (void)a->Run(); });
  while (clients.NumRegistered() < static_cast<size_t>(devices)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::SleepFor(absl::Milliseconds(200));  // every device in a long poll

  auto time_until_all_serve = [&](int64_t version) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      int serving = 0;
      for (const auto& [id, entry] : service.Fleet()) serving += entry.serving_version == version;
      if (serving == devices) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::printf("%d devices on loopback, server long-poll wait %lld ms\n", devices,
              static_cast<long long>(poll_wait_ms));
  const std::string a = run("run-a", 1), b = run("run-b", 2);
  auto t0 = std::chrono::steady_clock::now();
  (void)catalog->Promote("run-a", a);
  double s = time_until_all_serve(1);
  std::printf("promote (first version) -> every device serving it: %.2f s\n", s);
  (void)t0;
  absl::SleepFor(absl::Milliseconds(200));
  (void)catalog->Promote("run-b", b);
  s = time_until_all_serve(2);
  std::printf("promote (a second version, judged against the first) -> all serving: %.2f s\n", s);
  absl::SleepFor(absl::Milliseconds(200));
  (void)catalog->Rollback();
  s = time_until_all_serve(3);
  std::printf("rollback -> all serving: %.2f s\n", s);

  for (auto& a : agents) a->Stop();
  server->Shutdown();
  for (auto& t : threads) t.join();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
