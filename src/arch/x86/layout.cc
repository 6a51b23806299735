#include "arch/x86/layout.h"

#include <algorithm>

namespace vireo::x86 {

std::vector<RamRange> RamLayout(uint64_t memory) {
  std::vector<RamRange> ranges;
  uint64_t low = std::min(memory, kMmioHoleStart);
  ranges.push_back({0, low});
  if (memory > low) ranges.push_back({kRamAbove4g, memory - low});
  return ranges;
}

std::vector<E820Entry> E820Map(uint64_t memory) {
  std::vector<E820Entry> map;
  map.push_back({0, kEbda, E820Type::kRam});
  // EBDA, VGA hole and BIOS area: reserved, as on a PC. ACPI tables live inside it.
  map.push_back({kEbda, kHighMemory - kEbda, E820Type::kReserved});
  uint64_t low_end = std::min(memory, kMmioHoleStart);
  if (low_end > kHighMemory) map.push_back({kHighMemory, low_end - kHighMemory, E820Type::kRam});
  if (memory > low_end) map.push_back({kRamAbove4g, memory - low_end, E820Type::kRam});
  return map;
}

}  // namespace vireo::x86
