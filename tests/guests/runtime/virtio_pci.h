// virtio over PCI (virtio 1.2 section 4.1), modern devices only: finding them on bus 0, the
// virtio_pci_cap list (4.1.4), the common configuration structure (4.1.4.3), notifications
// (4.1.4.4), and MSI-X (4.1.4.5, PCI Local Bus 3.0 section 6.8.2) for interrupts.
#pragma once

#include <stdint.h>

#include "boot_info.h"
#include "pci.h"

namespace rt::virtio {

// 4.1.2 PCI Device Discovery: modern devices are 0x1040 + the virtio device type.
inline constexpr uint16_t kPciVendor = 0x1af4;
inline constexpr uint16_t kPciModernDeviceBase = 0x1040;

// 4.1.4 virtio_pci_cap.cfg_type.
inline constexpr uint8_t kPciCapCommonCfg = 1;
inline constexpr uint8_t kPciCapNotifyCfg = 2;
inline constexpr uint8_t kPciCapIsrCfg = 3;
inline constexpr uint8_t kPciCapDeviceCfg = 4;
inline constexpr uint8_t kPciCapPciCfg = 5;

// 4.1.4.3 struct virtio_pci_common_cfg (offsets).
inline constexpr uint32_t kCommonDeviceFeatureSelect = 0x00;  // le32
inline constexpr uint32_t kCommonDeviceFeature = 0x04;        // le32
inline constexpr uint32_t kCommonDriverFeatureSelect = 0x08;  // le32
inline constexpr uint32_t kCommonDriverFeature = 0x0c;        // le32
inline constexpr uint32_t kCommonConfigMsixVector = 0x10;     // le16
inline constexpr uint32_t kCommonNumQueues = 0x12;            // le16
inline constexpr uint32_t kCommonDeviceStatus = 0x14;         // u8
inline constexpr uint32_t kCommonConfigGeneration = 0x15;     // u8
inline constexpr uint32_t kCommonQueueSelect = 0x16;          // le16
inline constexpr uint32_t kCommonQueueSize = 0x18;            // le16
inline constexpr uint32_t kCommonQueueMsixVector = 0x1a;      // le16
inline constexpr uint32_t kCommonQueueEnable = 0x1c;          // le16
inline constexpr uint32_t kCommonQueueNotifyOff = 0x1e;       // le16
inline constexpr uint32_t kCommonQueueDesc = 0x20;            // le64
inline constexpr uint32_t kCommonQueueDriver = 0x28;          // le64
inline constexpr uint32_t kCommonQueueDevice = 0x30;          // le64
inline constexpr uint32_t kCommonCfgMinLength = 0x38;

inline constexpr uint16_t kMsiNoVector = 0xffff;  // 4.1.4.3: VIRTIO_MSI_NO_VECTOR

// 4.1.4.5 ISR status bits.
inline constexpr uint8_t kIsrQueue = 1 << 0;
inline constexpr uint8_t kIsrConfig = 1 << 1;

// One virtio PCI function on bus 0.
struct PciDevice {
  pci::Address addr;
  uint16_t pci_device_id;
  uint32_t device_type;  // virtio device id (5 Device Types)
};

// The `instance`-th modern virtio function on bus 0 whose type is `device_type`; prints every
// virtio function it sees. Initialises configuration access (pci::Init) first. False if none.
bool FindPciDevice(const BootInfo& info, uint32_t device_type, PciDevice& out, int instance = 0);

// The driver side of one virtio PCI function: plain data, valid when zeroed.
class PciTransport {
 public:
  // Maps the BARs the capabilities name (assigning any left unassigned), enables memory
  // decoding and bus mastering, and checks that the common, notify and device structures
  // exist and fit their BARs. False (with a message) otherwise. `quiet`: print only problems
  // (re-opening after a reset).
  bool Open(const PciDevice& dev, bool quiet = false);

  uint8_t Status() const { return Read8(common_ + kCommonDeviceStatus); }
  void SetStatus(uint8_t s) const { Write8(common_ + kCommonDeviceStatus, s); }
  uint64_t DeviceFeatures() const;
  void SetDriverFeatures(uint64_t f) const;
  uint8_t ConfigGeneration() const { return Read8(common_ + kCommonConfigGeneration); }

  // Selects queue `q`; its maximum size (0: no such queue) and whether it is enabled already.
  uint16_t QueueMax(int q) const;
  bool QueueEnabled(int q) const;
  // 4.1.5.1.3: size, MSI-X vector (kMsiNoVector for none), ring addresses, then enable. False if
  // the device refused the vector (reads back kMsiNoVector).
  bool SetUpQueue(int q, uint16_t size, uint16_t msix_entry, uint64_t desc, uint64_t avail,
                  uint64_t used);
  // 4.1.4.4: writes the queue index to the queue's notification address.
  void Notify(int q) const;

  // MSI-X: masks the function, points table entries 0 (configuration changes) and 1 (queues;
  // entry 0 again if the table has one entry) at this CPU's LAPIC with the given vectors (fixed,
  // edge), unmasks, enables MSI-X and sets config_msix_vector. False if the function has no
  // MSI-X capability or the device refuses the vector. Returns the queue entry in `queue_entry`.
  bool EnableMsix(uint8_t config_vector, uint8_t queue_vector, uint16_t* queue_entry);
  // Turns MSI-X off again (polling): config_msix_vector = NO_VECTOR, MSI-X Enable cleared.
  void DisableMsix();
  // Reads (and so clears) the ISR status byte (4.1.4.5).
  uint8_t ReadIsr() const { return Read8(isr_); }

  // Device-specific configuration (4.1.4.6): natural accesses at `off`; all ones outside it.
  uint8_t DeviceConfig8(uint32_t off) const;
  uint16_t DeviceConfig16(uint32_t off) const;
  uint32_t DeviceConfig32(uint32_t off) const;
  // A natural 32-bit write (the balloon's `actual`); dropped outside the structure.
  void SetDeviceConfig32(uint32_t off, uint32_t value) const;

  const PciDevice& device() const { return dev_; }

 private:
  static uint8_t Read8(uint64_t a);
  static void Write8(uint64_t a, uint8_t v);

  PciDevice dev_;
  uint64_t common_;  // absolute addresses (identity map) of each structure
  uint64_t notify_;
  uint32_t notify_multiplier_;
  uint64_t isr_;
  uint64_t device_;
  uint32_t device_len_;
  uint8_t msix_cap_;  // 0: none
  uint64_t msix_table_;
  uint16_t msix_entries_;
  static constexpr int kMaxQueues = 4;
  uint16_t queue_notify_off_[kMaxQueues];
};
static_assert(__is_trivially_constructible(PciTransport));

}  // namespace rt::virtio
