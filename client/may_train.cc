#include "client/may_train.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
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
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
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

  // Read until the command closes its output or the time is up.
  std::string output;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.fd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    char buffer[1024];
    const ssize_t got = read(read_end.fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    // Beyond kMaxRead the output is drained, not kept.
    if (output.size() < kMaxRead) output.append(buffer, static_cast<size_t>(got));
  }
  int status = 0;
  if (timed_out) {
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    return absl::FailedPreconditionError(absl::StrCat("the may-train command gave no answer within ",
                                             absl::FormatDuration(timeout)));
  }
  // The output is closed; the command may still be finishing.
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
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
    std::ifstream in(path, std::ios::binary);
    std::string head(kMaxRead, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
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
