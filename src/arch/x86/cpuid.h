// Shapes the accelerator's supported CPUID into the table one vCPU sees: its APIC ID,
// a topology consistent with --cpus (one package, one thread per core), and the KVM
// paravirtual leaves (kvm-clock and friends).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "accel/cpu_state.h"

namespace vireo::x86 {

struct CpuTopology {
  int cpus = 1;
};

std::vector<accel::CpuidEntry> BuildCpuid(std::span<const accel::CpuidEntry> supported,
                                          const CpuTopology& topology, uint32_t apic_id);

}  // namespace vireo::x86
