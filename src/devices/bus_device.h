// The narrow interface every port-I/O or MMIO device implements (rule 5).
// Offsets are relative to the device's base: the bus makes addresses device-relative.
// Called from vCPU threads: implementations lock their own state and never block on I/O.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace vireo {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual std::string_view name() const = 0;
  // Fill `data` (1, 2, 4 or 8 bytes) with the register value at `offset`.
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

}  // namespace vireo
