#include "server/client_manager.h"

#include <algorithm>
#include <cmath>

#include "common/random.h"

namespace shoal {

ClientManager::ClientManager(ClientManagerOptions options)
    : options_(std::move(options)) {}

bool ClientManager::IsLive(const Entry& e, absl::Time now) const {
  return now - e.last_seen <= options_.liveness_timeout;
}

void ClientManager::Register(std::shared_ptr<ClientProxy> proxy) {
  const std::string id = proxy->id();
  const absl::Time now = options_.clock->Now();
  absl::MutexLock lock(&mu_);
  clients_[id] = Entry{std::move(proxy), now};
}

void ClientManager::AddKnown(std::shared_ptr<ClientProxy> proxy) {
  const std::string id = proxy->id();
  absl::MutexLock lock(&mu_);
  clients_.try_emplace(id, Entry{std::move(proxy), absl::InfinitePast()});
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
  const absl::Time now = options_.clock->Now();
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return false;
  it->second.last_seen = now;
  return true;
}

void ClientManager::MarkUnresponsive(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(id);
  if (it != clients_.end()) it->second.last_seen = absl::InfinitePast();
}

size_t ClientManager::NumRegistered() const {
  absl::MutexLock lock(&mu_);
  return clients_.size();
}

std::vector<std::string> ClientManager::RegisteredIds() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, e] : clients_) ids.push_back(id);
  return ids;
}

std::map<std::string, DeclaredExamples> ClientManager::RegisteredClients() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, DeclaredExamples> out;
  for (const auto& [id, e] : clients_) out[id] = e.proxy->declared_examples();
  return out;
}

size_t ClientManager::NumSeenSince(absl::Time t) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, e] : clients_) n += e.last_seen >= t ? 1 : 0;
  return n;
}

std::vector<ClientStatus> ClientManager::Statuses() const {
  const absl::Time now = options_.clock->Now();
  absl::MutexLock lock(&mu_);
  std::vector<ClientStatus> out;
  out.reserve(clients_.size());
  for (const auto& [id, e] : clients_) {
    out.push_back({id, e.last_seen, IsLive(e, now), e.proxy->model_version()});
  }
  return out;
}

std::vector<std::string> ClientManager::LiveClientIds() const {
  const absl::Time now = options_.clock->Now();
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, e] : clients_) {
    if (IsLive(e, now)) ids.push_back(id);
  }
  return ids;
}

bool ClientManager::WaitForLive(size_t n, absl::Duration timeout) {
  Clock& clock = *options_.clock;
  const absl::Time give_up = clock.Now() + timeout;
  while (true) {
    if (LiveClientIds().size() >= n) return true;
    const absl::Time now = clock.Now();
    if (now >= give_up) return false;
    // Joins are rare; wake on any registry change or every 100 ms (liveness
    // also changes with time alone).
    absl::MutexLock lock(&mu_);
    const size_t before = clients_.size();
    auto grew = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return clients_.size() != before;
    };
    clock.AwaitWithDeadline(&mu_, absl::Condition(&grew),
                            std::min(give_up, now + absl::Milliseconds(100)));
  }
}

size_t SampleSize(const SamplingOptions& options, size_t live) {
  const auto want = static_cast<size_t>(
      std::ceil(options.fraction * static_cast<double>(live)));
  return std::min(live, std::max<size_t>(want, options.min_clients));
}

std::vector<std::shared_ptr<ClientProxy>> ClientManager::Sample(
    const SamplingOptions& options, uint64_t seed) {
  const absl::Time now = options_.clock->Now();
  std::vector<std::shared_ptr<ClientProxy>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : clients_) {  // std::map: sorted by ID
      if (IsLive(e, now)) live.push_back(e.proxy);
    }
  }
  const size_t want = SampleSize(options, live.size());
  Rng rng(seed);
  PartialShuffle(live, want, rng);
  live.resize(want);
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a->id() < b->id(); });
  return live;
}

void ClientManager::ShutdownAll(const std::string& reason, int64_t final_version) {
  ForEach([&](ClientProxy& c) { c.Shutdown(reason, final_version); });
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
