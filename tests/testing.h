// Helpers shared by the tests: temporary directories and free ports.
#ifndef SHOAL_TESTS_TESTING_H_
#define SHOAL_TESTS_TESTING_H_

#include <spdlog/logger.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace shoal::testing {

// TempDir creates a fresh directory under the test's temp root and removes
// it (recursively) when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// PickUnusedPort returns a TCP port on 127.0.0.1 that was free when asked
// (bound with port 0 and released).
int PickUnusedPort();

// HeadlessChromium is the command line of Debian's headless Chromium for a
// test, before its action (--dump-dom URL, --screenshot=PNG URL): a fresh
// profile in `profile_dir`, and every host but 127.0.0.1 unresolvable, so
// that a page asking for anything off loopback logs an error.
std::vector<std::string> HeadlessChromium(const std::string& profile_dir);

// LogCapture makes spdlog's default logger write into a string (every
// level) while it lives, and puts the previous logger back after.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string Text() const;

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<std::ostringstream> out_;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_TESTING_H_
