// BarAllocator: hands out naturally aligned ranges from one BAR window, the way firmware
// assigns BARs before the OS boots. A bump allocator: the bus allocates each device's
// BARs largest first, which keeps the holes small, and devices are never removed.
#pragma once

#include <cstdint>

#include "base/result.h"

namespace vireo::pci {

class BarAllocator {
 public:
  // The window [start, end).
  BarAllocator(uint64_t start, uint64_t end) : start_(start), end_(end), next_(start) {}

  // A range of `size` bytes (a power of two) aligned to `size`, as §6.2.5.1 requires of a
  // BAR; an error when the window has no room left.
  Result<uint64_t> Allocate(uint64_t size);

  uint64_t start() const { return start_; }
  uint64_t end() const { return end_; }

 private:
  uint64_t start_;
  uint64_t end_;
  uint64_t next_;
};

}  // namespace vireo::pci
