#include "client/may_train.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

extern char** environ;

namespace shoal::client {
namespace {

constexpr size_t kMaxReason = 200;
constexpr size_t kMaxRead = 4096;

// FirstLine is the first non-empty line of `text`, in printable ASCII (other
// bytes become '?'), cut at kMaxReason characters.
std::string FirstLine(absl::string_view text) {
  size_t begin = 0;
  while (begin < text.size() && (text[begin] == '\n' || text[begin] == '\r')) ++begin;
  size_t end = begin;
  while (end < text.size() && text[end] != '\n' && text[end] != '\r') ++end;
  std::string line(text.substr(begin, std::min(end - begin, kMaxReason)));
  for (char& c : line) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

absl::Status RunCheck(const std::string& command, absl::Duration timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot run the may-train command: pipe: ",
                                               std::strerror(errno)));
  }
  Fd read_end{fds[0]};
  Fd write_end{fds[1]};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  // Default signal handling in the command, whatever this process ignores.
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, "/bin/sh", &actions, &attr,
                                  const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) {
    return absl::UnavailableError(absl::StrCat("cannot run the may-train command: ",
                                               std::strerror(spawned)));
  }
  close(write_end.fd);
  write_end.fd = -1;

  // Until the command (the shell) has ended or the time is up: read what it
  // prints (kept up to kMaxRead, the rest drained so it never blocks on a
  // full pipe) and look for its end every 50 ms. A child it left running in
  // the background may hold the pipe open; its end is the shell's.
  std::string output;
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  bool ended = false;
  bool open = true;
  while (!ended) {
    const pid_t reaped = waitpid(pid, &status, WNOHANG);
    if (reaped == pid) {
      ended = true;
      break;
    }
    if (reaped < 0 && errno != EINTR) break;  // not ours to wait for: treat as ended
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    const int wait_ms = static_cast<int>(
        std::min<int64_t>(50, std::max<int64_t>(1, absl::ToInt64Milliseconds(left))));
    if (!open) {
      poll(nullptr, 0, wait_ms);
      continue;
    }
    pollfd p{read_end.fd, POLLIN, 0};
    const int ready = poll(&p, 1, wait_ms);
    if (ready <= 0) continue;  // nothing yet, or EINTR
    char buffer[1024];
    const ssize_t got = read(read_end.fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      open = false;  // the output is closed; the shell may still be finishing
      continue;
    }
    if (output.size() < kMaxRead) output.append(buffer, static_cast<size_t>(got));
  }
  // Drain what is already there (a command that printed and exited at once).
  if (ended && open) {
    for (;;) {
      pollfd p{read_end.fd, POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) break;
      char buffer[1024];
      const ssize_t got = read(read_end.fd, buffer, sizeof(buffer));
      if (got <= 0) break;
      if (output.size() < kMaxRead) output.append(buffer, static_cast<size_t>(got));
    }
  }
  // Whatever it started in its process group goes with it.
  kill(-pid, SIGKILL);
  if (!ended) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the may-train command gave no answer within ", absl::FormatDuration(timeout)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  std::string reason = FirstLine(output);
  if (reason.empty()) {
    reason = WIFEXITED(status)
                 ? absl::StrCat("the may-train command exited with status ", WEXITSTATUS(status))
                 : absl::StrCat("the may-train command was killed by signal ",
                                WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  return absl::FailedPreconditionError(reason);
}

}  // namespace

std::function<absl::Status()> MayTrainCommand(std::string command, absl::Duration timeout) {
  return [command = std::move(command), timeout] { return RunCheck(command, timeout); };
}

std::function<absl::Status()> PauseWhileFileExists(std::string path) {
  return [path = std::move(path)]() -> absl::Status {
    if (access(path.c_str(), F_OK) != 0) return absl::OkStatus();
    // Only a regular file is read (a FIFO would block the agent), without
    // waiting: O_NONBLOCK.
    std::string head;
    const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st;
      if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        head.resize(kMaxRead);
        const ssize_t got = read(fd, head.data(), head.size());
        head.resize(got > 0 ? static_cast<size_t>(got) : 0);
      }
      close(fd);
    }
    std::string reason = FirstLine(head);
    return absl::FailedPreconditionError(reason.empty() ? absl::StrCat(path, " exists") : reason);
  };
}

std::function<absl::Status()> BothMayTrain(std::function<absl::Status()> a,
                                           std::function<absl::Status()> b) {
  if (!a) return b;
  if (!b) return a;
  return [a = std::move(a), b = std::move(b)]() -> absl::Status {
    if (absl::Status first = a(); !first.ok()) return first;
    return b();
  };
}

}  // namespace shoal::client
