#include "accel/emu/tlb.h"

#include <algorithm>

namespace vireo::emu {

Tlb::Tlb() : entries_(std::make_unique<TlbEntry[]>(kEntries)) {}

void Tlb::Insert(uint64_t linear, uint64_t frame, uint8_t* host, uint8_t flags,
                 uint8_t page_shift) {
  TlbEntry& e = entries_[Index(linear)];
  e.tag = Tag(linear);
  e.frame = frame & kPageMask;
  e.host = host;
  e.flags = flags;
  e.epoch = epochs_[(flags & kTlbGlobal) ? 1 : 0];
  e.page_shift = page_shift;
  if (page_shift > 12) large_shifts_ |= uint64_t{1} << page_shift;
}

void Tlb::Bump(int kind) {
  if (++epochs_[kind] == 0) FlushSlow();  // wrapped: an old entry could match again
}

void Tlb::Flush(bool include_global) {
  ++version_;
  Bump(0);
  if (include_global) {
    Bump(1);
    large_shifts_ = 0;  // every entry is gone
  }
}

void Tlb::FlushSlow() {
  for (int i = 0; i < kEntries; ++i) entries_[i] = TlbEntry{};
  epochs_[0] = epochs_[1] = 1;
  large_shifts_ = 0;
}

void Tlb::FlushPage(uint64_t linear) {
  ++version_;
  // An entry for this 4 KiB page, of any size, sits in the page's own slot.
  TlbEntry& own = entries_[Index(linear)];
  if (own.tag == Tag(linear)) own = TlbEntry{};
  // A large page's other slices sit in the slots of its other 4 KiB pages: drop every entry
  // there whose page contains `linear` (INVLPG invalidates "the page" whatever its size, SDM
  // Vol. 3 4.10.4.1). Dead entries of older epochs may be dropped too, which is harmless.
  for (uint64_t shifts = large_shifts_; shifts != 0; shifts &= shifts - 1) {
    const int shift = __builtin_ctzll(shifts);
    const uint64_t base = linear & ~((uint64_t{1} << shift) - 1);
    const uint64_t slots = std::min<uint64_t>(uint64_t{1} << (shift - 12), kEntries);
    for (uint64_t i = 0; i < slots; ++i) {
      TlbEntry& e = entries_[(Index(base) + i) & (kEntries - 1)];
      if (e.tag != 0 && ((e.tag ^ linear) >> e.page_shift) == 0) e = TlbEntry{};
    }
  }
}

}  // namespace vireo::emu
