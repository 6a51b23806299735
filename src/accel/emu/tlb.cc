#include "accel/emu/tlb.h"

namespace vireo::emu {

void Tlb::Insert(uint64_t linear, uint64_t frame, uint8_t flags, uint8_t page_shift) {
  TlbEntry& e = entries_[Index(linear)];
  e.tag = Tag(linear);
  e.frame = frame & kPageMask;
  e.flags = flags;
  e.page_shift = page_shift;
  if (page_shift > 12) has_large_ = true;
}

void Tlb::Flush(bool include_global) {
  bool large = false;
  for (TlbEntry& e : entries_) {
    if (include_global || !(e.flags & kTlbGlobal)) {
      e = TlbEntry{};
    } else if (e.tag != 0 && e.page_shift > 12) {
      large = true;
    }
  }
  has_large_ = large;
}

void Tlb::FlushPage(uint64_t linear) {
  if (!has_large_) {
    // Only 4 KiB entries: the page can only be in its own slot.
    TlbEntry& e = entries_[Index(linear)];
    if (e.tag == Tag(linear)) e = TlbEntry{};
    return;
  }
  // A large page's slices sit in many slots: drop every entry whose page contains `linear`
  // (INVLPG invalidates "the page" whatever its size, SDM Vol. 3 4.10.4.1). Rare enough
  // (INVLPG, page faults) that a scan of 256 entries costs nothing measurable.
  for (TlbEntry& e : entries_) {
    if (e.tag != 0 && ((e.tag ^ linear) >> e.page_shift) == 0) e = TlbEntry{};
  }
}

}  // namespace vireo::emu
