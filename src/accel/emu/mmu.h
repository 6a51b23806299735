// Linear -> guest-physical translation: paging off, 32-bit paging (4 KiB and, with CR4.PSE,
// 4 MiB pages; SDM Vol. 3 4.3), PAE paging (PDPTE registers, 2 MiB pages, NX; 4.4) or
// 4-level paging (IA-32e, 4.5) with U/S, R/W, NX, CR0.WP and SMEP checks, accessed/dirty
// bits and the page-fault error code (SDM Vol. 3 4.7). TranslateCached puts the software TLB
// (tlb.h) in front of the walk.
#pragma once

#include <array>
#include <cstdint>

#include "accel/emu/cpu.h"
#include "accel/emu/tlb.h"
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
  // When ok with paging on: what a TLB entry keeps (kTlb* flags) and the page size found.
  bool cacheable = false;
  uint8_t tlb_flags = 0;
  uint8_t page_shift = 12;
};

// Walks the page tables in `memory` for `linear` as `state` sees them. `user` is whether the
// access counts as CPL3 (implicit supervisor accesses such as descriptor loads pass false).
Translation Translate(const CpuState& state, const GuestMemory& memory, uint64_t linear,
                      Access access, bool user);

// Loads the PAE PDPTE registers from the table at `cr3` (MOV CR3 under PAE paging, or MOV
// CR0/CR4 that turns PAE paging on or changes its bits; SDM Vol. 3 4.4.1). False: a present
// PDPTE has reserved bits set, which is #GP(0) for the MOV, and *pdpte is unchanged.
bool LoadPdptes(uint64_t cr3, const GuestMemory& memory, std::array<uint64_t, 4>* pdpte);
// The same from state.cr3 into state.pdpte (setting a whole vCPU state, e.g. SET_SREGS).
inline bool LoadPdptes(CpuState& state, const GuestMemory& memory) {
  return LoadPdptes(state.cr3, memory, &state.pdpte);
}

// Translate through `tlb`: a hit whose rights allow the access (checked again against the
// current CPL, CR0.WP, SMEP) and that needs no A/D update returns without a walk; anything
// else walks, refills the entry, and on a fault drops the page's entries (SDM Vol. 3
// 4.10.4.1: a page fault invalidates the TLB entries of the faulting linear address).
Translation TranslateCached(Tlb& tlb, const CpuState& state, const GuestMemory& memory,
                            uint64_t linear, Access access, bool user);

}  // namespace vireo::emu
