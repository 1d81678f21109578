#include "server/client_manager.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace shoal {

ClientManager::ClientManager(ClientManagerOptions options)
    : options_(std::move(options)) {}

bool ClientManager::IsLive(const Entry& e, absl::Time now) const {
  return now - e.last_seen <= options_.liveness_timeout;
}

void ClientManager::Register(std::shared_ptr<ClientProxy> proxy) {
  const std::string id = proxy->id();
  const absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  clients_[id] = Entry{std::move(proxy), now};
}

void ClientManager::Unregister(const std::string& id) {
  absl::MutexLock lock(&mu_);
  clients_.erase(id);
}

std::shared_ptr<ClientProxy> ClientManager::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.proxy;
}

bool ClientManager::Heartbeat(const std::string& id) {
  const absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return false;
  it->second.last_seen = now;
  return true;
}

size_t ClientManager::NumRegistered() const {
  absl::MutexLock lock(&mu_);
  return clients_.size();
}

size_t ClientManager::NumSeenSince(absl::Time t) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, e] : clients_) n += e.last_seen >= t ? 1 : 0;
  return n;
}

std::vector<std::string> ClientManager::LiveClientIds() const {
  const absl::Time now = options_.now();
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, e] : clients_) {
    if (IsLive(e, now)) ids.push_back(id);
  }
  return ids;
}

bool ClientManager::WaitForLive(size_t n, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    if (LiveClientIds().size() >= n) return true;
    if (absl::Now() >= give_up) return false;
    // Joins are rare; wake on any registry change or every 100 ms (liveness
    // also changes with time alone).
    absl::MutexLock lock(&mu_);
    const size_t before = clients_.size();
    auto grew = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return clients_.size() != before;
    };
    mu_.AwaitWithTimeout(absl::Condition(&grew), absl::Milliseconds(100));
  }
}

std::vector<std::shared_ptr<ClientProxy>> ClientManager::Sample(
    const SamplingOptions& options, uint64_t seed) const {
  const absl::Time now = options_.now();
  std::vector<std::shared_ptr<ClientProxy>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : clients_) {  // std::map: sorted by ID
      if (IsLive(e, now)) live.push_back(e.proxy);
    }
  }
  size_t want = static_cast<size_t>(
      std::ceil(options.fraction * static_cast<double>(live.size())));
  want = std::min(live.size(), std::max<size_t>(want, options.min_clients));
  // Partial Fisher-Yates with mt19937_64 and a hand-written bounded draw:
  // std::uniform_int_distribution differs between standard libraries.
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < want; ++i) {
    const uint64_t span = live.size() - i;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t r;
    do {
      r = rng();
    } while (r >= limit);
    std::swap(live[i], live[i + r % span]);
  }
  live.resize(want);
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a->id() < b->id(); });
  return live;
}

void ClientManager::ForEach(const std::function<void(ClientProxy&)>& fn) const {
  std::vector<std::shared_ptr<ClientProxy>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : clients_) all.push_back(e.proxy);
  }
  for (const auto& p : all) fn(*p);
}

}  // namespace shoal
