// isa-debug-exit: a test guest ends the VM with a status of its choosing, as with QEMU's
// "-device isa-debug-exit,iobase=0xf4,iosize=0x04" (hw/misc/debugexit.c).
//
// A write of any width (1, 2 or 4 bytes) asks the VMM to stop with exit status
// (value << 1) | 1, value being the little-endian number written; status 1 therefore means
// "wrote 0", and no write can produce 0, so a test harness can tell a debug exit from a
// normal power-off. The status is an int carrying the low 32 bits; a process exit status
// keeps only its low 8 bits, as QEMU's does. Reads return 0, as QEMU's do.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "devices/bus_device.h"
#include "devices/vm_control.h"

namespace vireo {

class DebugExit : public BusDevice {
 public:
  static constexpr uint64_t kBase = 0xf4;
  static constexpr uint64_t kSize = 4;

  // `vm` must outlive the device.
  explicit DebugExit(VmControl& vm) : vm_(vm) {}

  std::string_view name() const override { return "isa-debug-exit"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // The exit status a write of `value` requests.
  static int ExitStatus(uint32_t value) { return static_cast<int>((value << 1) | 1); }

 private:
  VmControl& vm_;  // stateless otherwise: nothing to lock
};

}  // namespace vireo
