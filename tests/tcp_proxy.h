// TcpProxy: a byte pipe on 127.0.0.1 between clients and one target port,
// with a hand on the wire, for fault-injection tests. Each accepted
// connection is forwarded to the target by a thread of its own; the test can
// cut every connection at once (RST), refuse new ones (a dead link), stall
// the forwarding (a link that stops moving), and act at the moment a
// connection has carried a given number of bytes (to cut or stall in the
// middle of a download or an upload). It never looks at the bytes, so TLS
// passes through untouched, and since it listens on 127.0.0.1 a server
// certificate for 127.0.0.1 still matches.
//
// Example:
//   absl::StatusOr<std::unique_ptr<TcpProxy>> proxy = TcpProxy::Start(server_port);
//   StartClient(..., "--server", (*proxy)->address());
//   (*proxy)->OnBytes(TcpProxy::kClientToServer, 300'000, [&] { (*proxy)->CutAll(); });
//
// Thread-safe. The destructor closes every connection and joins the threads.
#ifndef SHOAL_TESTS_TCP_PROXY_H_
#define SHOAL_TESTS_TCP_PROXY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace shoal::testing {

class TcpProxy {
 public:
  enum Direction { kClientToServer = 0, kServerToClient = 1 };

  // ConnectionStats: what one accepted connection carried so far, counted
  // as the proxy read it from each side.
  struct ConnectionStats {
    int64_t bytes[2] = {0, 0};  // indexed by Direction
    bool open = false;
  };

  // Start listens on 127.0.0.1 on a port the kernel picks (no race with
  // other tests) and forwards to 127.0.0.1:`target_port`. Fails when it
  // cannot listen.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"

  // CutAll resets every open connection at once: both sides get a TCP RST
  // (SO_LINGER 0), as when a middlebox drops the flow. New connections are
  // still accepted unless SetRefusing(true).
  void CutAll();
  // SetRefusing: while true, new connections are accepted and reset at
  // once, so a client sees connection failures until it is set back.
  void SetRefusing(bool refusing);
  // Pause stops forwarding in both directions on every connection (bytes
  // stay in the kernel buffers and in the proxy); Resume goes on where it
  // stopped. A paused link also hides a peer's disconnection from the other
  // side until Resume, like a link that went silent.
  void Pause();
  void Resume();
  bool paused() const;

  // OnBytes arms a one-shot trigger: once any single connection has read
  // more than `bytes` from the side `direction` names after this call,
  // `action` runs (once, on that connection's thread, before those bytes
  // are forwarded, so an action that calls Pause() or CutAll() holds them
  // back). Arming again replaces an unfired trigger. `action` may call any
  // method of the proxy except the destructor.
  void OnBytes(Direction direction, int64_t bytes, std::function<void()> action);
  // TriggerFired tells whether the last armed trigger has run.
  bool TriggerFired() const;

  // Connections returns every connection accepted (and not refused) so far,
  // in accept order, open or closed.
  std::vector<ConnectionStats> Connections() const;
  // TotalBytes sums `direction` over all connections.
  int64_t TotalBytes(Direction direction) const;
  int64_t refused() const;

 private:
  struct Connection;
  TcpProxy(int listen_fd, int port, int target_port, int wake_fd);
  void AcceptLoop();
  void Forward(Connection* c);
  // Wake every thread so it looks at the shared state again.
  void WakeAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CountAndTrigger adds `n` bytes read from `direction` on `c` and returns
  // the trigger's action when this read fired it.
  std::function<void()> CountAndTrigger(Connection* c, Direction direction, int64_t n);

  const int listen_fd_;
  const int port_;
  const int target_port_;
  const int accept_wake_fd_;  // eventfd that wakes the accept loop

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool refusing_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  struct Trigger {
    bool armed = false;
    bool fired = false;
    Direction direction = kClientToServer;
    int64_t bytes = 0;
    std::vector<int64_t> baseline;  // per connection, bytes at arming time
    std::function<void()> action;
  };
  Trigger trigger_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_TCP_PROXY_H_
