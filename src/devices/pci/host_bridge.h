// HostBridge: function 0 of slot 0 on bus 0, the host-to-PCI bridge an OS expects to
// find there (class 06h sub-class 00h, PCI Local Bus 3.0 Appendix D). It has no BARs and
// no capabilities; it only identifies the bridge. The ids are Red Hat's "QEMU PCIe host
// bridge" (1b36:0008), which no OS attaches chipset quirks to.
#pragma once

#include <mutex>
#include <span>
#include <string_view>

#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"

namespace vireo::pci {

class HostBridge final : public PciDevice {
 public:
  static constexpr uint16_t kVendorId = 0x1b36;  // Red Hat, Inc.
  static constexpr uint16_t kDeviceId = 0x0008;  // QEMU PCIe host bridge
  static constexpr uint16_t kSubsystemVendorId = 0x1af4;
  static constexpr uint16_t kSubsystemId = 0x1100;
  static constexpr uint8_t kClassBridge = 0x06;
  static constexpr uint8_t kSubclassHostBridge = 0x00;

  HostBridge();

  std::string_view name() const override { return "pci-host-bridge"; }
  void ConfigRead(uint16_t offset, std::span<uint8_t> data) override;
  void ConfigWrite(uint16_t offset, std::span<const uint8_t> data) override;
  std::span<const BarDefinition> bars() const override { return {}; }
  BusDevice* bar_device(int) override { return nullptr; }
  void BarMoved(int, uint64_t, uint64_t) override {}  // no BARs

 private:
  std::mutex mutex_;
  ConfigSpace config_;  // guarded by mutex_
};

}  // namespace vireo::pci
