// Helpers shared by the tests: temporary directories and free ports.
#ifndef SHOAL_TESTS_TESTING_H_
#define SHOAL_TESTS_TESTING_H_

#include <string>

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

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_TESTING_H_
