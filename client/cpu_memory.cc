#include "client/cpu_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace shoal::client {
namespace {

std::atomic<int64_t> g_in_use{0};
std::atomic<int64_t> g_peak{0};
std::atomic<bool> g_installed{false};

c10::Allocator* g_base = nullptr;
c10::DeleterFnPtr g_base_free = nullptr;

// The size of each block this allocator handed out, by address, in shards
// so threads rarely wait on each other. A block the base allocator made
// before the wrapper was installed (oneDNN's scratch, freed through
// raw_deallocate, which asks for the allocator in place at the time) is not
// in it, and is freed by the base allocator without being counted: nothing
// is ever read from memory the wrapper did not allocate.
struct Shard {
  absl::Mutex mu;
  absl::flat_hash_map<void*, size_t> sizes ABSL_GUARDED_BY(mu);
};
constexpr size_t kShards = 64;
std::array<Shard, kShards>& Shards() {
  static auto* shards = new std::array<Shard, kShards>();
  return *shards;
}
Shard& ShardOf(void* p) {
  return Shards()[(reinterpret_cast<uintptr_t>(p) >> 6) % kShards];
}

void NotePeak(int64_t now) {
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void Free(void* data) {
  if (data == nullptr) return;
  size_t n = 0;
  {
    Shard& shard = ShardOf(data);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.sizes.find(data);
    if (it != shard.sizes.end()) {
      n = it->second;
      shard.sizes.erase(it);
    }
  }
  g_in_use.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
  g_base_free(data);
}

class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    // The base's block as it is: its context is its data, which LibTorch's
    // raw_allocate requires.
    void* data = g_base->raw_allocate(n);
    if (data != nullptr) {
      Shard& shard = ShardOf(data);
      absl::MutexLock lock(&shard.mu);
      shard.sizes[data] = n;
    }
    NotePeak(g_in_use.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) +
             static_cast<int64_t>(n));
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
