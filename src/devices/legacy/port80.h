// Port 0x80, the POST diagnostic port: firmware and kernels write progress codes here
// (Linux also uses it as an I/O delay). Writes are recorded; a read returns the last code,
// as on boards whose POST card latch is readable.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string_view>

#include "devices/bus_device.h"

namespace vireo {

class Port80 : public BusDevice {
 public:
  static constexpr uint64_t kBase = 0x80;
  static constexpr uint64_t kSize = 1;

  std::string_view name() const override { return "port80"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  uint8_t last_value() const { return last_value_.load(std::memory_order_relaxed); }
  uint64_t write_count() const { return write_count_.load(std::memory_order_relaxed); }

 private:
  // Two independent values: atomics are the whole lock.
  std::atomic<uint8_t> last_value_{0};
  std::atomic<uint64_t> write_count_{0};
};

}  // namespace vireo
