// The state a vCPU starts in, for each way a kernel can be entered:
//   kLong64       Linux 64-bit boot protocol: long mode, identity-mapped 4 GiB,
//                 GDT with __BOOT_CS = 0x10 and __BOOT_DS = 0x18 (boot.rst "64-bit BOOT PROTOCOL").
//   kProtected32  PVH and multiboot: flat 32-bit protected mode, paging off.
// Application processors are not set up here: they wait for INIT/SIPI from the guest.
#pragma once

#include <cstdint>

#include "accel/accelerator.h"
#include "memory/guest_memory.h"

namespace vireo::x86 {

enum class CpuMode { kLong64, kProtected32 };

struct EntryState {
  CpuMode mode = CpuMode::kLong64;
  uint64_t rip = 0;
  uint64_t rsi = 0;
  uint64_t rbx = 0;
  uint64_t rax = 0;
};

// Boot GDT and (for long mode) the identity page tables, at the layout.h addresses.
Status WriteBootTables(const GuestMemory& memory, CpuMode mode);

// Registers, segments, control registers and the boot MSRs for the BSP.
Status SetupBootCpu(accel::Vcpu& vcpu, const EntryState& entry);

// MSRs every vCPU starts with (fast strings on, MTRRs enabled with write-back default).
Status SetupCpuMsrs(accel::Vcpu& vcpu);

// The special registers SetupBootCpu would load, for tests.
accel::SpecialRegisters BootSpecialRegisters(const accel::SpecialRegisters& reset_state,
                                             CpuMode mode);

}  // namespace vireo::x86
