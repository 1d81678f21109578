#include "client/cpu_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstddef>
#include <mutex>

namespace shoal::client {
namespace {

std::atomic<int64_t> g_in_use{0};
std::atomic<int64_t> g_peak{0};
std::atomic<bool> g_installed{false};

// Each block carries its size in a header in front of the data, so that the
// deleter needs nothing but the data pointer: LibTorch's raw_allocate /
// raw_deallocate (oneDNN allocates its scratch through them) require the
// DataPtr's context to be the data itself. 64 bytes keep the data at
// LibTorch's 64-byte alignment.
constexpr size_t kHeader = 64;

c10::Allocator* g_base = nullptr;
c10::DeleterFnPtr g_base_free = nullptr;

void NotePeak(int64_t now) {
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void Free(void* data) {
  if (data == nullptr) return;
  char* block = static_cast<char*>(data) - kHeader;
  const int64_t n = static_cast<int64_t>(*reinterpret_cast<size_t*>(block));
  g_in_use.fetch_sub(n, std::memory_order_relaxed);
  g_base_free(block);
}

class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    void* block = g_base->raw_allocate(n + kHeader);
    *static_cast<size_t*>(block) = n;
    const int64_t now =
        g_in_use.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) +
        static_cast<int64_t>(n);
    NotePeak(now);
    void* data = static_cast<char*>(block) + kHeader;
    return {data, data, &Free, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &Free; }
};

}  // namespace

void InstallCpuMemoryMeter() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_base = c10::GetCPUAllocator();
    g_base_free = g_base->raw_deleter();
    if (g_base_free == nullptr) return;  // an allocator that cannot be wrapped
    static CountingAllocator counting;
    // The highest priority, so that no later registration displaces it.
    c10::SetCPUAllocator(&counting, /*priority=*/255);
    g_installed.store(true);
  });
}

bool CpuMemoryMeterInstalled() { return g_installed.load(); }
int64_t CpuBytesInUse() { return g_in_use.load(std::memory_order_relaxed); }
int64_t CpuPeakBytes() { return g_peak.load(std::memory_order_relaxed); }
void ResetCpuPeakBytes() { g_peak.store(g_in_use.load(std::memory_order_relaxed)); }

}  // namespace shoal::client
