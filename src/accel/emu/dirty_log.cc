#include "accel/emu/dirty_log.h"

namespace vireo::emu {

DirtyLog::DirtyLog(const GuestMemory& memory) {
  for (const GuestMemory::Region& r : memory.regions()) {
    Region region;
    region.base = r.range.base;
    region.pages = (r.range.size + 4095) / 4096;
    const uint64_t words = (region.pages + 63) / 64;
    region.bits = std::make_unique<std::atomic<uint64_t>[]>(words);
    for (uint64_t i = 0; i < words; ++i) region.bits[i].store(0, std::memory_order_relaxed);
    regions_.push_back(std::move(region));
  }
}

void DirtyLog::Mark(uint64_t physical, uint64_t len) {
  if (!enabled() || len == 0) return;
  for (Region& r : regions_) {
    if (physical < r.base || physical - r.base >= r.pages * 4096) continue;
    const uint64_t first = (physical - r.base) / 4096;
    const uint64_t last = std::min((physical - r.base + len - 1) / 4096, r.pages - 1);
    for (uint64_t page = first; page <= last; ++page) {
      std::atomic<uint64_t>& word = r.bits[page / 64];
      const uint64_t bit = uint64_t{1} << (page % 64);
      // Test first: re-dirtying a page is the common case and costs no locked operation.
      if (!(word.load(std::memory_order_relaxed) & bit)) {
        word.fetch_or(bit, std::memory_order_relaxed);
      }
    }
    return;
  }
}

std::vector<std::vector<uint64_t>> DirtyLog::Fetch() {
  std::vector<std::vector<uint64_t>> out;
  out.reserve(regions_.size());
  for (Region& r : regions_) {
    std::vector<uint64_t> words((r.pages + 63) / 64);
    for (size_t i = 0; i < words.size(); ++i) {
      words[i] = r.bits[i].exchange(0, std::memory_order_acq_rel);
    }
    out.push_back(std::move(words));
  }
  return out;
}

}  // namespace vireo::emu
