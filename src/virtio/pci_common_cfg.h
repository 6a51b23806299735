// The virtio-pci register blocks as the spec lays them out (virtio 1.2, 4.1.4 "Virtio
// Structure PCI Capabilities"): the vendor-specific capability that points at each block,
// and struct virtio_pci_common_cfg (4.1.4.3) with the width of every field, so the
// transport can tell a natural access (4.1.3.1) from a hostile one. PciTransport's
// handling of the common configuration fields lives in pci_common_cfg.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace vireo::virtio {

// 4.1.4 "cfg_type" of struct virtio_pci_cap.
namespace pci_cap {
inline constexpr uint8_t kCommonCfg = 1;  // VIRTIO_PCI_CAP_COMMON_CFG
inline constexpr uint8_t kNotifyCfg = 2;  // VIRTIO_PCI_CAP_NOTIFY_CFG
inline constexpr uint8_t kIsrCfg = 3;     // VIRTIO_PCI_CAP_ISR_CFG
inline constexpr uint8_t kDeviceCfg = 4;  // VIRTIO_PCI_CAP_DEVICE_CFG
inline constexpr uint8_t kPciCfg = 5;     // VIRTIO_PCI_CAP_PCI_CFG

// struct virtio_pci_cap (4.1.4), offsets within the capability.
inline constexpr uint8_t kCapLen = 2;
inline constexpr uint8_t kCfgType = 3;
inline constexpr uint8_t kBar = 4;
inline constexpr uint8_t kId = 5;
inline constexpr uint8_t kOffset = 8;
inline constexpr uint8_t kLength = 12;
inline constexpr uint8_t kSize = 16;
// struct virtio_pci_notify_cap (4.1.4.4): notify_off_multiplier follows the header.
inline constexpr uint8_t kNotifyOffMultiplier = 16;
inline constexpr uint8_t kNotifyCapSize = 20;
// struct virtio_pci_cfg_cap (4.1.4.9): pci_cfg_data[4] follows the header.
inline constexpr uint8_t kPciCfgData = 16;
inline constexpr uint8_t kPciCfgCapSize = 20;
}  // namespace pci_cap

// 4.1.4.3 struct virtio_pci_common_cfg, named as in the spec.
namespace common_cfg {
inline constexpr uint64_t kDeviceFeatureSelect = 0x00;  // le32 RW
inline constexpr uint64_t kDeviceFeature = 0x04;        // le32 RO
inline constexpr uint64_t kDriverFeatureSelect = 0x08;  // le32 RW
inline constexpr uint64_t kDriverFeature = 0x0c;        // le32 RW
inline constexpr uint64_t kMsixConfig = 0x10;           // le16 RW
inline constexpr uint64_t kNumQueues = 0x12;            // le16 RO
inline constexpr uint64_t kDeviceStatus = 0x14;         // u8 RW
inline constexpr uint64_t kConfigGeneration = 0x15;     // u8 RO
inline constexpr uint64_t kQueueSelect = 0x16;          // le16 RW
inline constexpr uint64_t kQueueSize = 0x18;            // le16 RW
inline constexpr uint64_t kQueueMsixVector = 0x1a;      // le16 RW
inline constexpr uint64_t kQueueEnable = 0x1c;          // le16 RW
inline constexpr uint64_t kQueueNotifyOff = 0x1e;       // le16 RO
inline constexpr uint64_t kQueueDesc = 0x20;            // le64 RW
inline constexpr uint64_t kQueueDriver = 0x28;          // le64 RW
inline constexpr uint64_t kQueueDevice = 0x30;          // le64 RW
inline constexpr uint64_t kQueueNotifyData = 0x38;      // le16 RO
inline constexpr uint64_t kQueueReset = 0x3a;           // le16 RW
inline constexpr uint64_t kSize = 0x3c;

struct Field {
  uint64_t offset;  // where the field starts
  uint8_t width;    // its size in bytes
  bool writable;
};

inline constexpr Field kFields[] = {
    {kDeviceFeatureSelect, 4, true}, {kDeviceFeature, 4, false},    {kDriverFeatureSelect, 4, true},
    {kDriverFeature, 4, true},       {kMsixConfig, 2, true},        {kNumQueues, 2, false},
    {kDeviceStatus, 1, true},        {kConfigGeneration, 1, false}, {kQueueSelect, 2, true},
    {kQueueSize, 2, true},           {kQueueMsixVector, 2, true},   {kQueueEnable, 2, true},
    {kQueueNotifyOff, 2, false},     {kQueueDesc, 8, true},         {kQueueDriver, 8, true},
    {kQueueDevice, 8, true},         {kQueueNotifyData, 2, false},  {kQueueReset, 2, true},
};

// The field a natural access names (4.1.3.1: each field with its own width; a 64-bit field
// also as its low and high 32-bit halves), or nullopt for any other access.
constexpr std::optional<Field> NaturalAccess(uint64_t offset, size_t size) {
  for (const Field& field : kFields) {
    if (offset == field.offset && size == field.width) return field;
    if (field.width == 8 && size == 4 && (offset == field.offset || offset == field.offset + 4)) {
      return field;
    }
  }
  return std::nullopt;
}

}  // namespace common_cfg
}  // namespace vireo::virtio
