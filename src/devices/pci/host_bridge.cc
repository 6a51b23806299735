#include "devices/pci/host_bridge.h"

namespace vireo::pci {

HostBridge::HostBridge()
    : config_(PciIds{.vendor_id = kVendorId,
                     .device_id = kDeviceId,
                     .class_code = kClassBridge,
                     .subclass = kSubclassHostBridge,
                     .subsystem_vendor_id = kSubsystemVendorId,
                     .subsystem_id = kSubsystemId}) {}

void HostBridge::ConfigRead(uint16_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  config_.Read(offset, data);
}

void HostBridge::ConfigWrite(uint16_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  config_.Write(offset, data);
}

}  // namespace vireo::pci
