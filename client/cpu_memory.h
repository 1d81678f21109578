// CPU memory meter: counts the bytes of LibTorch's CPU tensors, so that a
// device's memory budget (TrainerOptions::memory_budget_bytes) can be
// measured rather than guessed. Installing it wraps LibTorch's CPU
// allocator; every CPU tensor allocated from then on is counted while it
// lives (tensors allocated before are not, and free as before).
#ifndef SHOAL_CLIENT_CPU_MEMORY_H_
#define SHOAL_CLIENT_CPU_MEMORY_H_

#include <cstdint>

namespace shoal::client {

// InstallCpuMemoryMeter wraps the CPU allocator, once per process (later
// calls do nothing). Thread-safe. The cost is an atomic addition and a
// sharded hash-map insertion per allocation (the block's size, by address);
// nothing is installed unless asked. Blocks allocated before it are freed
// as before and never counted.
void InstallCpuMemoryMeter();
bool CpuMemoryMeterInstalled();

// Bytes of counted CPU tensors alive now, and the most alive at once since
// the last ResetCpuPeakBytes (process-wide, over all threads). Zero before
// InstallCpuMemoryMeter.
int64_t CpuBytesInUse();
int64_t CpuPeakBytes();
// ResetCpuPeakBytes sets the peak to the bytes in use now.
void ResetCpuPeakBytes();

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_CPU_MEMORY_H_
