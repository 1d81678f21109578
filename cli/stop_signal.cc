#include "cli/stop_signal.h"

#include <pthread.h>
#include <signal.h>

#include "common/logging.h"

namespace shoal::cli {
namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);  // StopOnSignal's own wake-up
  return set;
}

}  // namespace

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

StopOnSignal::StopOnSignal(Coordinator* coordinator) {
  sigset_t set = StopSignals();
  thread_ = std::thread([set, coordinator] {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != SIGUSR1) {
      spdlog::warn("signal {}: stopping after the current round", sig);
      coordinator->RequestStop();
    }
  });
}

StopOnSignal::~StopOnSignal() {
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
}

}  // namespace shoal::cli
