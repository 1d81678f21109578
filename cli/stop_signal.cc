#include "cli/stop_signal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace shoal::cli {
namespace {

// The pipe the handler writes to: [0] read, [1] write. Set once, before the
// handlers are installed, and never closed.
int signal_pipe[2] = {-1, -1};
volatile sig_atomic_t signals_seen = 0;

extern "C" void OnStopSignal(int sig) {
  const int saved_errno = errno;
  if (signals_seen++ > 0) {
    // A second signal: the user means it. End the process by the signal's
    // default action (its exit status says which signal).
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  const unsigned char byte = static_cast<unsigned char>(sig);
  // Non-blocking: a full pipe (impossible with one byte per signal and a
  // second signal ending the process) must never block a handler.
  [[maybe_unused]] const ssize_t written = ::write(signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

absl::Status ErrnoStatus(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::Status InstallStopSignalHandlers() {
  static absl::Status installed = [] {
    if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      return ErrnoStatus("cannot create the stop-signal pipe");
    }
    struct sigaction action {};
    action.sa_handler = &OnStopSignal;
    sigemptyset(&action.sa_mask);
    // Calls interrupted on the thread that takes the signal resume.
    action.sa_flags = SA_RESTART;
    for (const int sig : {SIGINT, SIGTERM}) {
      if (::sigaction(sig, &action, nullptr) != 0) {
        return ErrnoStatus("cannot install the SIGINT/SIGTERM handler");
      }
    }
    return absl::OkStatus();
  }();
  return installed;
}

StopOnSignal::StopOnSignal(std::function<void()> stop) {
  if (signal_pipe[0] < 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
    spdlog::error("SIGINT/SIGTERM will not stop the run gracefully: {}",
                  signal_pipe[0] < 0 ? "no handler installed" : std::strerror(errno));
    return;
  }
  thread_ = std::thread([this, stop = std::move(stop)] {
    pollfd fds[2] = {{signal_pipe[0], POLLIN, 0}, {wake_[0], POLLIN, 0}};
    while (true) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        spdlog::error("stop-signal watcher: poll: {}", std::strerror(errno));
        return;
      }
      if (fds[1].revents != 0) return;  // the destructor
      unsigned char sig = 0;
      if ((fds[0].revents & POLLIN) != 0 && ::read(signal_pipe[0], &sig, 1) == 1) {
        received_.store(sig);
        spdlog::warn(
            "signal {} ({}): stopping after the current round; a second one "
            "ends "
            "the process at once",
            static_cast<int>(sig), sig == SIGINT ? "SIGINT" : "SIGTERM");
        stop();
        return;
      }
    }
  });
}

StopOnSignal::~StopOnSignal() {
  if (thread_.joinable()) {
    const char byte = 0;
    [[maybe_unused]] const ssize_t written = ::write(wake_[1], &byte, 1);
    thread_.join();
  }
  for (const int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace shoal::cli
