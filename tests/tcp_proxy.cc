#include "tests/tcp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::testing {
namespace {

void Wake(int event_fd) {
  const uint64_t one = 1;
  // Only fails when the counter would overflow, i.e. it is already awake.
  (void)!write(event_fd, &one, sizeof(one));
}

void Drain(int event_fd) {
  uint64_t value = 0;
  (void)!read(event_fd, &value, sizeof(value));
}

// CloseWithReset closes `fd` so that the peer gets a RST instead of a FIN:
// a dropped flow, not an orderly goodbye.
void CloseWithReset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

int ConnectToTarget(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

}  // namespace

struct TcpProxy::Connection {
  size_t index = 0;
  int client_fd = -1;
  int wake_fd = -1;  // closed by the proxy's destructor, never reused before
  bool cut = false;  // guarded by the proxy's mu_
  ConnectionStats stats;  // guarded by the proxy's mu_
  std::thread thread;
};

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int target_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1: ", error));
  }
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  auto proxy = std::unique_ptr<TcpProxy>(new TcpProxy(fd, ntohs(addr.sin_port), target_port, wake));
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

TcpProxy::TcpProxy(int listen_fd, int port, int target_port, int wake_fd)
    : listen_fd_(listen_fd), port_(port), target_port_(target_port), accept_wake_fd_(wake_fd) {}

TcpProxy::~TcpProxy() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    WakeAll();
  }
  acceptor_.join();
  // The acceptor is gone: the list no longer grows.
  std::vector<Connection*> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& c : connections_) all.push_back(c.get());
  }
  for (Connection* c : all) {
    c->thread.join();
    close(c->wake_fd);
  }
  close(listen_fd_);
  close(accept_wake_fd_);
}

std::string TcpProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

void TcpProxy::WakeAll() {
  Wake(accept_wake_fd_);
  for (auto& c : connections_) Wake(c->wake_fd);
}

void TcpProxy::CutAll() {
  absl::MutexLock lock(&mu_);
  for (auto& c : connections_) c->cut = true;
  WakeAll();
}

void TcpProxy::SetRefusing(bool refusing) {
  absl::MutexLock lock(&mu_);
  refusing_ = refusing;
}

void TcpProxy::Pause() {
  absl::MutexLock lock(&mu_);
  paused_ = true;
  WakeAll();
}

void TcpProxy::Resume() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
  WakeAll();
}

bool TcpProxy::paused() const {
  absl::MutexLock lock(&mu_);
  return paused_;
}

void TcpProxy::OnBytes(Direction direction, int64_t bytes, std::function<void()> action) {
  absl::MutexLock lock(&mu_);
  trigger_ = Trigger{};
  trigger_.armed = true;
  trigger_.direction = direction;
  trigger_.bytes = bytes;
  for (auto& c : connections_) trigger_.baseline.push_back(c->stats.bytes[direction]);
  trigger_.action = std::move(action);
}

bool TcpProxy::TriggerFired() const {
  absl::MutexLock lock(&mu_);
  return trigger_.fired;
}

std::vector<TcpProxy::ConnectionStats> TcpProxy::Connections() const {
  absl::MutexLock lock(&mu_);
  std::vector<ConnectionStats> out;
  for (const auto& c : connections_) out.push_back(c->stats);
  return out;
}

int64_t TcpProxy::TotalBytes(Direction direction) const {
  absl::MutexLock lock(&mu_);
  int64_t total = 0;
  for (const auto& c : connections_) total += c->stats.bytes[direction];
  return total;
}

int64_t TcpProxy::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

std::function<void()> TcpProxy::CountAndTrigger(Connection* c, Direction direction, int64_t n) {
  absl::MutexLock lock(&mu_);
  c->stats.bytes[direction] += n;
  Trigger& t = trigger_;
  if (!t.armed || t.direction != direction) return nullptr;
  const int64_t base = c->index < t.baseline.size() ? t.baseline[c->index] : 0;
  if (c->stats.bytes[direction] - base <= t.bytes) return nullptr;
  t.armed = false;
  t.fired = true;
  return std::move(t.action);
}

void TcpProxy::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {accept_wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) Drain(accept_wake_fd_);
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (refusing_) {
      ++refused_;
      CloseWithReset(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Connection>();
    c->index = connections_.size();
    c->client_fd = fd;
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->stats.open = true;
    Connection* raw = c.get();
    connections_.push_back(std::move(c));
    raw->thread = std::thread([this, raw] { Forward(raw); });
  }
}

void TcpProxy::Forward(Connection* c) {
  const int server_fd = ConnectToTarget(target_port_);
  // fd of the side each direction reads from; it writes to the other one.
  const int from[2] = {c->client_fd, server_fd};
  std::string pending[2];
  size_t sent[2] = {0, 0};
  bool eof[2] = {false, false};
  bool reset = server_fd < 0;  // the target is down: reset the client
  char buf[64 * 1024];
  while (!reset) {
    bool paused = false;
    {
      absl::MutexLock lock(&mu_);
      if (c->cut || stopping_) {
        reset = true;
        break;
      }
      paused = paused_;
    }
    if (eof[0] && eof[1] && pending[0].empty() && pending[1].empty()) break;  // both said goodbye
    pollfd fds[3];
    int n = 0;
    fds[n++] = {c->wake_fd, POLLIN, 0};
    int slot[2] = {-1, -1};  // index in fds of each side's socket
    if (!paused) {
      for (int side = 0; side < 2; ++side) {
        short events = 0;
        if (pending[side].empty() && !eof[side]) events |= POLLIN;  // read from this side
        if (!pending[1 - side].empty()) events |= POLLOUT;          // write to this side
        if (events != 0) {
          slot[side] = n;
          fds[n++] = {from[side], events, 0};
        }
      }
    }
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      reset = true;
      break;
    }
    if (fds[0].revents != 0) {
      Drain(c->wake_fd);
      continue;  // look at cut / paused again before moving a byte
    }
    for (int side = 0; side < 2 && !reset; ++side) {
      if (slot[side] < 0) continue;
      const short got = fds[slot[side]].revents;
      const short wanted = fds[slot[side]].events;
      const int fd = from[side];
      const int peer = from[1 - side];
      if ((wanted & POLLIN) && (got & (POLLIN | POLLHUP | POLLERR))) {
        const ssize_t r = read(fd, buf, sizeof(buf));
        if (r > 0) {
          pending[side].assign(buf, static_cast<size_t>(r));
          sent[side] = 0;
          std::function<void()> action =
              CountAndTrigger(c, static_cast<Direction>(side), static_cast<int64_t>(r));
          if (action) {
            action();
            break;  // re-check cut / paused before forwarding these bytes
          }
        } else if (r == 0) {
          eof[side] = true;
          if (pending[side].empty()) shutdown(peer, SHUT_WR);
        } else if (errno != EAGAIN && errno != EINTR) {
          reset = true;  // the peer reset: pass the reset on
        }
      }
      if (!reset && (wanted & POLLOUT) && (got & (POLLOUT | POLLHUP | POLLERR))) {
        std::string& out = pending[1 - side];
        const ssize_t w =
            send(fd, out.data() + sent[1 - side], out.size() - sent[1 - side], MSG_NOSIGNAL);
        if (w > 0) {
          sent[1 - side] += static_cast<size_t>(w);
          if (sent[1 - side] == out.size()) {
            out.clear();
            if (eof[1 - side]) shutdown(fd, SHUT_WR);
          }
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          reset = true;
        }
      }
    }
  }
  if (reset) {
    CloseWithReset(c->client_fd);
    CloseWithReset(server_fd);
  } else {
    close(c->client_fd);
    close(server_fd);
  }
  absl::MutexLock lock(&mu_);
  c->stats.open = false;
}

}  // namespace shoal::testing
