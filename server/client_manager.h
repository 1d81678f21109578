// ClientManager: the registry of connected clients, their liveness, and
// seeded sampling.
#ifndef SHOAL_SERVER_CLIENT_MANAGER_H_
#define SHOAL_SERVER_CLIENT_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/client_pool.h"
#include "server/client_proxy.h"

namespace shoal {

struct ClientManagerOptions {
  // A client not heard from (join, poll, result) for this long is not live:
  // it is not sampled. Default 30 s, three times the longest poll.
  absl::Duration liveness_timeout = absl::Seconds(30);
  // Time source for liveness and WaitForLive. Not owned; tests hand in a
  // FakeClock.
  Clock* clock = Clock::Real();
};

// ClientStatus: one registered client as the manager sees it now.
struct ClientStatus {
  std::string id;
  absl::Time last_seen;
  bool live = false;
  int64_t model_version = -1;  // ClientProxy::model_version
};

// ClientManager is thread-safe. Clients are kept by their stable ID; joining
// again under the same ID replaces the proxy (a device that restarted).
class ClientManager : public ClientPool {
 public:
  explicit ClientManager(ClientManagerOptions options = {});

  // Register adds or replaces the client and marks it live.
  void Register(std::shared_ptr<ClientProxy> proxy);
  // AddKnown adds a client known from before a server restart (the
  // checkpoint's registry) without marking it live: it is not sampled until
  // it is heard from (Heartbeat), and its next poll finds it registered
  // rather than unknown. A registered ID is left as it is.
  void AddKnown(std::shared_ptr<ClientProxy> proxy);
  void Unregister(const std::string& id);
  // Find returns the client or nullptr.
  std::shared_ptr<ClientProxy> Find(const std::string& id) const override;
  // Heartbeat marks the client live now; false for an unknown client.
  bool Heartbeat(const std::string& id);
  // MarkUnresponsive makes the client not live until its next Heartbeat or
  // Register, however recently it was heard from.
  void MarkUnresponsive(const std::string& id) override;

  size_t NumRegistered() const;
  // RegisteredIds returns the IDs of every registered client, live or not,
  // sorted (what a checkpoint keeps).
  std::vector<std::string> RegisteredIds() const;
  // RegisteredClients maps every registered client's ID to what it declared
  // at Join (zeros: nothing), sorted by ID (what a checkpoint keeps).
  std::map<std::string, DeclaredExamples> RegisteredClients() const;
  // NumSeenSince counts registered clients heard from at or after `t`.
  size_t NumSeenSince(absl::Time t) const;
  // LiveClientIds returns the IDs of live clients, sorted.
  std::vector<std::string> LiveClientIds() const override;
  // WaitForLive blocks until at least `n` clients are live or `timeout`
  // passes, and returns whether they are.
  bool WaitForLive(size_t n, absl::Duration timeout) override;

  std::vector<std::shared_ptr<ClientProxy>> Sample(const SamplingOptions& options,
                                                   uint64_t seed) override;
  void ShutdownAll(const std::string& reason, int64_t final_version) override;

  // Statuses returns every registered client, sorted by ID.
  std::vector<ClientStatus> Statuses() const;

  // ForEach calls `fn` on every registered client.
  void ForEach(const std::function<void(ClientProxy&)>& fn) const;

 private:
  struct Entry {
    std::shared_ptr<ClientProxy> proxy;
    absl::Time last_seen;
  };
  bool IsLive(const Entry& e, absl::Time now) const;

  ClientManagerOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> clients_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_SERVER_CLIENT_MANAGER_H_
