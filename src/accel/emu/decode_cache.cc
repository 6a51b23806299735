#include "accel/emu/decode_cache.h"

namespace vireo::emu {

void DecodeCache::Insert(uint64_t physical, CpuMode mode, const DecodedInsn& insn) {
  const uint64_t page = physical >> 12;
  uint64_t& slot = code_pages_[PageSlot(page)];
  // Another page owns the slot: drop its decodes so the invariant holds (rare: 64 slots).
  if (slot != 0 && slot != page + 1) DropPage(slot - 1);
  slot = page + 1;
  entries_[Index(physical)] = {Tag(physical, mode), insn};
}

void DecodeCache::DropPage(uint64_t page) {
  for (Entry& e : entries_) {
    if (e.tag != 0 && (e.tag >> 14) == page) e.tag = 0;
  }
  code_pages_[PageSlot(page)] = 0;
}

}  // namespace vireo::emu
