#include "devices/acpi/reset_control.h"

#include <algorithm>

namespace vireo {

void ResetControlDevice::Read(uint64_t offset, std::span<uint8_t> data) {
  // One byte-wide register; anything past it reads as open bus.
  std::fill(data.begin(), data.end(), 0xff);
  if (offset == 0 && !data.empty()) data[0] = value();
}

void ResetControlDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != 0 || data.empty()) return;
  const uint8_t value = data[0];
  value_.store(value, std::memory_order_relaxed);
  if (value & kRstCpu) vm_.RequestStop(StopKind::kReset, 0);
}

}  // namespace vireo
