// Per-vCPU exit counters, like kvm_stat. Each vCPU thread owns its counters and writes
// them without atomics; they are read only after the threads have been joined.
#pragma once

#include <array>
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

  void Count(accel::ExitReason reason) { ++exits[static_cast<size_t>(reason)]; }
};

struct RunTimings {
  std::chrono::steady_clock::time_point process_start;
  std::chrono::steady_clock::time_point first_guest_entry;  // vCPU 0's first KVM_RUN
  std::chrono::steady_clock::time_point end;
};

// The --stats report: exits per reason and per vCPU, unclaimed accesses, timings.
std::string FormatStats(const std::vector<VcpuCounters>& vcpus, const RunTimings& timings);

}  // namespace vireo
