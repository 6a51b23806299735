// The decoded-instruction cache: instructions already decoded, keyed by the guest-physical
// address of their first byte and the CPU mode, so a loop decodes each instruction once.
//
// Keyed by physical address (after the TLB, which still checks the fetch's rights on every
// step), so remapping a linear page needs no flush here. x86 guarantees that a store to an
// instruction that executes later is seen (SDM Vol. 3 8.1.3, self-modifying code), so every
// guest store through the interpreter's write path calls InvalidateWrite. Only instructions
// that lie wholly in one 4 KiB page are cached, so one page's invalidation covers them.
//
// Which pages hold cached decodes is tracked exactly in a small direct-mapped table: a store
// to a page with no decodes costs one compare; a store to a code page (self-modifying code,
// rare) or a slot collision drops that page's decodes with one scan.
//
// Not seen: stores that bypass the interpreter (another vCPU, device DMA, the VMM). Whoever
// owns those must call InvalidateWrite too once such writers exist (docs/emulator.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "accel/emu/decoded_insn.h"

namespace vireo::emu {

class DecodeCache {
 public:
  static constexpr int kEntries = 512;
  static constexpr int kCodePages = 64;

  const DecodedInsn* Lookup(uint64_t physical, CpuMode mode) const {
    const Entry& e = entries_[Index(physical)];
    return e.tag == Tag(physical, mode) ? &e.insn : nullptr;
  }
  // `insn` starts at `physical` and ends in the same 4 KiB page (the caller checked).
  void Insert(uint64_t physical, CpuMode mode, const DecodedInsn& insn);
  // Drops every decode (INIT; a store by another writer to a page this cache may hold).
  void Clear() {
    for (Entry& e : entries_) e.tag = 0;
    code_pages_.fill(0);
  }
  // A guest store to [physical, physical + len), len <= 4096: drops decodes on its pages.
  void InvalidateWrite(uint64_t physical, size_t len) {
    InvalidatePage(physical >> 12);
    if (((physical + len - 1) >> 12) != (physical >> 12)) InvalidatePage((physical >> 12) + 1);
  }

 private:
  struct Entry {
    uint64_t tag = 0;  // (physical << 2) | (mode + 1); 0 is empty
    DecodedInsn insn;
  };
  static uint64_t Tag(uint64_t physical, CpuMode mode) {
    return (physical << 2) | (static_cast<uint64_t>(mode) + 1);
  }
  static unsigned Index(uint64_t physical) { return physical & (kEntries - 1); }
  static unsigned PageSlot(uint64_t page) { return page & (kCodePages - 1); }
  void InvalidatePage(uint64_t page) {
    if (code_pages_[PageSlot(page)] == page + 1) DropPage(page);
  }
  void DropPage(uint64_t page);

  std::array<Entry, kEntries> entries_{};
  // page + 1 of the one page in this slot that may have entries; 0 is none. Invariant:
  // every valid entry's page is recorded in its slot.
  std::array<uint64_t, kCodePages> code_pages_{};
};

}  // namespace vireo::emu
