// ResetControlDevice: the PC chipset's Reset Control Register at I/O port 0xcf9 (Intel
// ICH/PCH datasheets, "RST_CNT"), which the FADT names as the ACPI reset register
// (ACPI 6.4 §4.8.3.6; RESET_VALUE 0x06). Linux also pokes it directly for reboot=pci.
//
//   bit 1  SYS_RST   hard (1) or soft (0) reset — a VM only has one kind
//   bit 2  RST_CPU   writing 1 starts the reset
//   bit 3  FULL_RST  power-cycle as well — same thing for a VM
//
// The datasheet resets on RST_CPU's 0->1 transition; Vireo resets on any write with
// RST_CPU set, so a guest that wrote 0x06 before (and was reset) can do so again.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string_view>

#include "devices/bus_device.h"
#include "devices/vm_control.h"

namespace vireo {

class ResetControlDevice final : public BusDevice {
 public:
  static constexpr uint16_t kPort = 0xcf9;
  static constexpr uint64_t kSize = 1;
  static constexpr uint8_t kSysRst = 1 << 1;
  static constexpr uint8_t kRstCpu = 1 << 2;
  static constexpr uint8_t kFullRst = 1 << 3;

  // `vm` must outlive the device; the VM owns both.
  explicit ResetControlDevice(VmControl& vm) : vm_(vm) {}

  std::string_view name() const override { return "reset-control"; }
  // Reads return the last value written.
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // For snapshots: the register is the whole state (rule 4).
  uint8_t value() const { return value_.load(std::memory_order_relaxed); }
  void set_value(uint8_t value) { value_.store(value, std::memory_order_relaxed); }

 private:
  VmControl& vm_;
  std::atomic<uint8_t> value_{0};
};

}  // namespace vireo
