// Subprocess: a child process for integration tests, with its output in a
// log file; killed (SIGKILL) on destruction if still running.
#ifndef SHOAL_TESTS_SUBPROCESS_H_
#define SHOAL_TESTS_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace shoal::testing {

class Subprocess {
 public:
  // Start runs `argv` with stdout and stderr appended to `log_path`.
  Subprocess(const std::vector<std::string>& argv, const std::string& log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Wait waits up to `timeout` for exit and returns the exit code, or -1 on
  // timeout, or 128 + signal for a killed process.
  int Wait(absl::Duration timeout);
  void Kill(int signal);
  const std::string& log_path() const { return log_path_; }
  // Log returns the log file's contents so far.
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// WaitForLogLine waits up to `timeout` for `needle` to appear in the
// process's log; returns whether it did.
bool WaitForLogLine(const Subprocess& p, const std::string& needle, absl::Duration timeout);

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_SUBPROCESS_H_
