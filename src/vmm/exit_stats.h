// Per-vCPU exit counters, like kvm_stat. Each vCPU thread owns its counters and is their only
// writer; the control API reads them live with LoadCounters. Both sides go through relaxed
// std::atomic_ref, so the reads are race-free and the hot path stays a plain load and store.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "accel/vcpu_exit.h"

namespace vireo {

struct VcpuCounters {
  std::array<uint64_t, static_cast<size_t>(accel::ExitReason::kCount)> exits{};
  uint64_t pio_unclaimed_reads = 0;
  uint64_t pio_unclaimed_writes = 0;
  uint64_t mmio_unclaimed_reads = 0;
  uint64_t mmio_unclaimed_writes = 0;

  void Count(accel::ExitReason reason);
};

// Adds one to a counter that only this thread writes (see above).
inline void Bump(uint64_t& counter) {
  std::atomic_ref<uint64_t> c(counter);
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
inline void VcpuCounters::Count(accel::ExitReason reason) {
  Bump(exits[static_cast<size_t>(reason)]);
}

// A copy of counters another thread is writing.
VcpuCounters LoadCounters(const VcpuCounters& live);

struct RunTimings {
  std::chrono::steady_clock::time_point process_start;
  std::chrono::steady_clock::time_point first_guest_entry;  // vCPU 0's first KVM_RUN
  std::chrono::steady_clock::time_point end;
};

// The --stats report: exits per reason and per vCPU, unclaimed accesses, timings.
std::string FormatStats(const std::vector<VcpuCounters>& vcpus, const RunTimings& timings);

}  // namespace vireo
