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
  // From TranslateCached when ok: the host address of `physical` when its page is RAM (valid
  // to the end of that 4 KiB page), else null (MMIO, or paging off: ask GuestMemory).
  uint8_t* host = nullptr;
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

// The permission checks of SDM Vol. 3 4.6 over the combined rights of a walk (or a TLB
// entry): `user` is a CPL3 access, the others are the rights gathered.
inline bool AccessDenied(const CpuState& state, Access access, bool user, bool writable,
                         bool user_ok, bool nx) {
  if (user && !user_ok) return true;
  if (access == Access::kWrite && !writable && (user || (state.cr0 & kCr0Wp))) return true;
  if (access == Access::kExecute && nx) return true;
  if (access == Access::kExecute && !user && user_ok && (state.cr4 & kCr4Smep)) return true;
  return false;
}

// The slow half of TranslateCached: walk, then fill the entry (or drop the page on a fault).
Translation TranslateFill(Tlb& tlb, const CpuState& state, const GuestMemory& memory,
                          uint64_t linear, Access access, bool user);

// Translate through `tlb`: a hit whose rights allow the access (checked again against the
// current CPL, CR0.WP, SMEP) and that needs no A/D update returns without a walk; anything
// else walks, refills the entry, and on a fault drops the page's entries (SDM Vol. 3
// 4.10.4.1: a page fault invalidates the TLB entries of the faulting linear address).
// Inline: it runs for every memory access.
inline Translation TranslateCached(Tlb& tlb, const CpuState& state, const GuestMemory& memory,
                                   uint64_t linear, Access access, bool user) {
  // Paging off: nothing to cache, the "walk" is a mask.
  if (!(state.cr0 & kCr0Pg)) return Translate(state, memory, linear, access, user);
  if (const TlbEntry* e = tlb.Lookup(linear)) {
    const uint8_t f = e->flags;
    // The rights are re-checked on every hit against the current CPL/CR0.WP/SMEP. A write
    // through an entry whose final PTE had D=0 must not complete from the TLB: the walk
    // sets D (SDM Vol. 3 4.8). A is already set: entries exist only after a walk.
    if (!AccessDenied(state, access, user, f & kTlbWritable, f & kTlbUser, f & kTlbNx) &&
        (access != Access::kWrite || (f & kTlbDirty))) {
      Translation t;
      t.ok = true;
      t.physical = e->frame | (linear & 0xfff);
      t.host = e->host ? e->host + (linear & 0xfff) : nullptr;
      return t;
    }
  }
  return TranslateFill(tlb, state, memory, linear, access, user);
}

}  // namespace vireo::emu
