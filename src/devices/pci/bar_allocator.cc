#include "devices/pci/bar_allocator.h"

#include <bit>

namespace vireo::pci {

Result<uint64_t> BarAllocator::Allocate(uint64_t size) {
  if (!std::has_single_bit(size)) return Fail("PCI BAR size {:#x} is not a power of two", size);
  const uint64_t aligned = (next_ + size - 1) & ~(size - 1);
  if (aligned < next_ || aligned > end_ || size > end_ - aligned) {
    return Fail("PCI BAR of {:#x} bytes does not fit in the window {:#x}-{:#x} ({:#x} used)", size,
                start_, end_, next_ - start_);
  }
  next_ = aligned + size;
  return aligned;
}

}  // namespace vireo::pci
