// ClientPool: the clients a Coordinator can ask, whatever they are. The
// ClientManager (devices that joined over the network) is one pool; the
// simulator's population of virtual clients is another.
#ifndef SHOAL_SERVER_CLIENT_POOL_H_
#define SHOAL_SERVER_CLIENT_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/client_proxy.h"

namespace shoal {

// SamplingOptions: how many clients a round asks.
struct SamplingOptions {
  double fraction = 1.0;     // of live clients, rounded up; in (0, 1]
  uint32_t min_clients = 1;  // never fewer (when that many are live)
};

// SampleSize is how many of `live` clients a round asks:
// max(min_clients, ceil(fraction * live)), capped at `live`.
size_t SampleSize(const SamplingOptions& options, size_t live);

// ClientPool implementations are thread-safe.
class ClientPool {
 public:
  virtual ~ClientPool() = default;

  // WaitForLive blocks until at least `n` clients are live or `timeout`
  // passes, and returns whether they are.
  virtual bool WaitForLive(size_t n, absl::Duration timeout) = 0;
  // LiveClientIds returns the IDs of the clients that may be asked now,
  // sorted.
  virtual std::vector<std::string> LiveClientIds() const = 0;
  // Sample picks SampleSize(options, live) live clients with a generator
  // seeded by `seed`: the same live set and seed give the same sample on
  // every platform. Sorted by ID.
  virtual std::vector<std::shared_ptr<ClientProxy>> Sample(
      const SamplingOptions& options, uint64_t seed) = 0;
  // Find returns the client with this ID, or nullptr.
  virtual std::shared_ptr<ClientProxy> Find(const std::string& id) const = 0;
  // MarkUnresponsive: client `id` let a deadline pass. A pool that tracks
  // liveness stops counting it as live until it is heard from again, so the
  // next round does not wait for a device that died; a live but slow device
  // is back as soon as it calls in. The default does nothing.
  virtual void MarkUnresponsive(const std::string& id) {}
  // ShutdownAll tells every client that the run is over and which model
  // version is final.
  virtual void ShutdownAll(const std::string& reason, int64_t final_version) = 0;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_CLIENT_POOL_H_
