// The decoded-instruction cache: instructions already decoded, keyed by the guest-physical
// address of their first byte and the CPU mode, so a loop decodes each instruction once.
//
// Keyed by physical address (after the TLB, which still checks the fetch's rights), so
// remapping a linear page needs no flush here. x86 guarantees that a store to an instruction
// that executes later is seen (SDM Vol. 3 8.1.3, self-modifying code), so every guest store
// through the interpreter's write path calls InvalidateWrite. Only instructions that lie
// wholly in one 4 KiB page are cached, so one page's invalidation covers them.
//
// Sized for a kernel, whose hot code spans megabytes: kEntries slots indexed by a hash of the
// address (higher bits mixed in, so pages 64 KiB apart do not fight for the same slots), and
// invalidation in O(1) whatever the size:
// - per page: a table of page generations (kPageSlots, indexed by page number modulo its
//   size). An entry keeps the generation its page had at insert; a store to a page bumps the
//   page's generation, which makes every decode of that page miss. The low bit of a
//   generation says "decodes were inserted since the last bump", so a store to a page with
//   no decodes only reads its slot. Pages sharing a slot only cause extra misses.
// - whole cache (Clear): an epoch that entries must match.
// Both counters wrap by clearing everything for real (once per 2^31 stores to one page
// slot, or 2^32 clears), so an old entry can never match a reused value.
//
// An entry's bytes change only in Insert, never on invalidation, so the interpreter may run a
// handler on a pointer into the cache even when that handler's own store invalidates it.
//
// Not seen: stores that bypass the interpreter (another vCPU, device DMA, the VMM). Whoever
// owns those must call InvalidateWrite too (docs/emulator.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "accel/emu/decoded_insn.h"

namespace vireo::emu {

class DecodeCache {
 public:
  static constexpr size_t kEntries = 16384;
  static constexpr size_t kPageSlots = 65536;  // 256 MiB of guest-physical pages
  // Largest page generation (bits 31..1; bit 0 is "has decodes"): the next bump wraps.
  static constexpr uint32_t kLastGeneration = 0xfffffffe;

  DecodeCache();

  const DecodedInsn* Lookup(uint64_t physical, CpuMode mode) const {
    const Entry& e = entries_[Index(physical)];
    return e.tag == Tag(physical, mode) && e.epoch == epoch_ &&
                   e.generation == generations_[PageSlot(physical >> 12)]
               ? &e.insn
               : nullptr;
  }
  // Starts loading the entry of `physical` into the host's cache (the next instruction's,
  // while the current one runs): the table is too large for the L1 cache.
  void Prefetch(uint64_t physical) const { __builtin_prefetch(&entries_[Index(physical)]); }
  // `insn` starts at `physical` and ends in the same 4 KiB page (the caller checked).
  // Returns the cached copy.
  const DecodedInsn* Insert(uint64_t physical, CpuMode mode, const DecodedInsn& insn);
  // Drops every decode (INIT; a store by another vCPU to a page this cache may hold).
  void Clear() {
    if (++epoch_ == 0) ClearSlow();
  }
  // A guest store to [physical, physical + len), len <= 4096: drops decodes on its pages.
  // True when there were some (the store may have changed code about to run).
  bool InvalidateWrite(uint64_t physical, size_t len) {
    bool dropped = InvalidatePage(physical >> 12);
    if (((physical + len - 1) >> 12) != (physical >> 12))
      dropped |= InvalidatePage((physical >> 12) + 1);
    return dropped;
  }

  // For the block cache (block_cache.h), which shares this cache's invalidation: marks
  // `page`'s slot as holding decodes and returns its generation; and the whole-cache epoch,
  // extended by the count of real clears so that a value never comes back.
  uint32_t MarkPageDecoded(uint64_t page) { return generations_[PageSlot(page)] |= 1; }
  uint64_t epoch() const { return (static_cast<uint64_t>(clears_) << 32) | epoch_; }

  // Tests: the generation of `page`'s slot, and setting it (to reach the wrap quickly).
  uint32_t page_generation(uint64_t page) const { return generations_[PageSlot(page)]; }
  void set_page_generation_for_test(uint64_t page, uint32_t generation) {
    generations_[PageSlot(page)] = generation;
  }
  void set_epoch_for_test(uint32_t epoch) { epoch_ = epoch; }

 private:
  struct Entry {
    uint64_t tag;         // (physical << 2) | (mode + 1); 0 is empty
    uint32_t generation;  // of the page's slot at insert (bit 0 set)
    uint32_t epoch;       // epoch_ at insert
    DecodedInsn insn;
  };
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  static uint64_t Tag(uint64_t physical, CpuMode mode) {
    return (physical << 2) | (static_cast<uint64_t>(mode) + 1);
  }
  // Consecutive bytes of one page fill consecutive slots; the page number above the index
  // bits is folded in so that code at the same offset of distant pages spreads out.
  static size_t Index(uint64_t physical) {
    return (physical ^ ((physical >> 14) * 0x9e3779b1u)) & (kEntries - 1);
  }
  static size_t PageSlot(uint64_t page) { return page & (kPageSlots - 1); }
  bool InvalidatePage(uint64_t page) {
    uint32_t& g = generations_[PageSlot(page)];
    if (!(g & 1)) return false;
    if (g == (kLastGeneration | 1)) {
      ClearSlow();  // the counter wraps: no entry may keep a generation that comes back
    } else {
      g += 1;  // next even value: a new generation with no decodes yet
    }
    return true;
  }
  void ClearSlow();

  // calloc: all-zero is "empty", and untouched pages of a large table cost nothing (the
  // differential harness makes one interpreter per case).
  std::unique_ptr<Entry[], Free> entries_;
  std::unique_ptr<uint32_t[], Free> generations_;
  uint32_t epoch_ = 1;
  uint32_t clears_ = 0;  // ClearSlow calls
};

}  // namespace vireo::emu
