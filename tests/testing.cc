#include "tests/testing.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"

namespace shoal::testing {

TempDir::TempDir() {
  std::string root = ::testing::TempDir();
  if (root.empty()) root = "/tmp/";
  std::string tmpl = root + "shoal-test-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> HeadlessChromium(const std::string& profile_dir) {
  return {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
          "--no-first-run", "--disable-extensions", "--disable-background-networking",
          "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
          "--user-data-dir=" + profile_dir, "--virtual-time-budget=10000"};
}

int PickUnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  close(fd);
  return port;
}

LogCapture::LogCapture()
    : previous_(spdlog::default_logger()),
      out_(std::make_shared<std::ostringstream>()) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(
      *out_, /*force_flush=*/true);
  auto logger = std::make_shared<spdlog::logger>("capture", std::move(sink));
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

LogCapture::~LogCapture() { spdlog::set_default_logger(previous_); }

std::string LogCapture::Text() const {
  spdlog::default_logger()->flush();
  return out_->str();
}

}  // namespace shoal::testing
