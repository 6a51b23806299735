// Linear -> guest-physical translation: paging off, or 4-level paging (IA-32e, SDM Vol. 3
// 4.5) with U/S, R/W, NX, CR0.WP and SMEP checks, accessed/dirty bits and the page-fault
// error code (SDM Vol. 3 4.7). No TLB yet: every access walks (a software TLB comes next).
#pragma once

#include <cstdint>

#include "accel/emu/cpu.h"
#include "memory/guest_memory.h"

namespace vireo::emu {

enum class Access : uint8_t { kRead, kWrite, kExecute };

// Page-fault error code bits (SDM Vol. 3 Figure 4-12).
inline constexpr uint32_t kPfPresent = 1u << 0;
inline constexpr uint32_t kPfWrite = 1u << 1;
inline constexpr uint32_t kPfUser = 1u << 2;
inline constexpr uint32_t kPfReserved = 1u << 3;
inline constexpr uint32_t kPfFetch = 1u << 4;

struct Translation {
  bool ok = false;
  uint64_t physical = 0;
  uint32_t error_code = 0;  // #PF error code when !ok
};

// Walks the page tables in `memory` for `linear` as `state` sees them. `user` is whether the
// access counts as CPL3 (implicit supervisor accesses such as descriptor loads pass false).
Translation Translate(const CpuState& state, const GuestMemory& memory, uint64_t linear,
                      Access access, bool user);

}  // namespace vireo::emu
