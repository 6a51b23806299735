// The two ways a guest reaches PCI configuration space, both forwarding to one PciBus.
//
// PciConfigIo: Configuration Mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2), ports
// 0xCF8-0xCFF.
//   0xCF8 CONFIG_ADDRESS  32-bit only: bit 31 enable, 23:16 bus, 15:11 device,
//                         10:8 function, 7:2 register (bits 1:0 and 30:24 read 0)
//   0xCFC CONFIG_DATA     1, 2 or 4 bytes at 0xCFC + (register & 3)
// The host bridge latches CONFIG_ADDRESS only on a dword access at 0xCF8; byte and word
// accesses to 0xCF8-0xCFB "pass through as normal I/O". On a PC one of those is the
// chipset's Reset Control register at 0xCF9 (ICH RST_CNT; devices/acpi/reset_control.h),
// which the FADT names as the ACPI reset register. The Bus forbids overlapping ranges,
// so this device claims all eight ports and forwards single-byte accesses to 0xCF9 to
// the delegate given at construction, as QEMU's PIIX/ICH9 models do.
//
// PciEcam: the PCI Express Enhanced Configuration Access Mechanism (PCIe Base 3.0
// §7.2.2), a memory window with 4 KiB per function:
//   offset = bus << 20 | device << 15 | function << 12 | register
// Vireo's window covers bus 0 only (1 MiB at kPciEcamBase).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "devices/bus_device.h"
#include "devices/pci/pci_bus.h"

namespace vireo::pci {

class PciConfigIo final : public BusDevice {
 public:
  static constexpr uint16_t kPort = 0xcf8;
  static constexpr uint64_t kSize = 8;
  static constexpr uint64_t kConfigAddress = 0;  // offsets from kPort
  static constexpr uint64_t kResetControl = 1;   // 0xcf9, forwarded byte-wide
  static constexpr uint64_t kConfigData = 4;
  static constexpr uint32_t kEnable = 1u << 31;
  static constexpr uint32_t kAddressMask = 0x80fffffc;  // the bits CONFIG_ADDRESS keeps

  // `bus` must outlive this device. `port_cf9` (may be null: open bus) receives byte
  // accesses to port 0xCF9 at its offset 0.
  PciConfigIo(PciBus& bus, std::shared_ptr<BusDevice> port_cf9)
      : bus_(bus), port_cf9_(std::move(port_cf9)) {}

  std::string_view name() const override { return "pci-config-io"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // CONFIG_ADDRESS, for snapshots (rule 4).
  uint32_t config_address() const { return address_.load(std::memory_order_relaxed); }
  void set_config_address(uint32_t value) {
    address_.store(value & kAddressMask, std::memory_order_relaxed);
  }

 private:
  PciBus& bus_;
  std::shared_ptr<BusDevice> port_cf9_;
  std::atomic<uint32_t> address_{0};
};

class PciEcam final : public BusDevice {
 public:
  static constexpr uint64_t kBusShift = 20;
  static constexpr uint64_t kDeviceShift = 15;
  static constexpr uint64_t kFunctionShift = 12;
  static constexpr uint64_t kRegisterMask = 0xfff;

  // `bus` must outlive this device; the VMM inserts it at kPciEcamBase, kPciEcamSize.
  explicit PciEcam(PciBus& bus) : bus_(bus) {}

  std::string_view name() const override { return "pci-ecam"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  PciBus& bus_;
};

}  // namespace vireo::pci
