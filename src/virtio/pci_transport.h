// virtio-pci modern transport (virtio 1.2, 4.1 "Virtio Over PCI Bus"), non-transitional.
//
// Identity (4.1.2): vendor 0x1af4, device 0x1040 + device type, revision 1, subsystem
// vendor 0x1af4 and subsystem id 0x40 ("SHOULD ... 0x40 or higher"); the class code
// follows the device type (storage, network, communication, else "other").
//
// One 64-bit, non-prefetchable memory BAR (BAR 4) holds every register block, each
// 4 KiB-aligned and named by a vendor-specific capability (4.1.4):
//   0x0000 common configuration (4.1.4.3, pci_common_cfg.h), 0x3c bytes
//   0x1000 ISR status (4.1.4.5), 1 byte: bit 0 queue, bit 1 config change; a read clears it
//   0x2000 device-specific configuration (4.1.4.6), 4 KiB handed to the device
//   0x3000 notifications (4.1.4.4): queue q at 0x3000 + 4 * q (notify_off_multiplier 4,
//          queue_notify_off = q), so each queue has its own address for an ioeventfd
//   then the MSI-X table and PBA (PCI 3.0 §6.8.2), each in its own 4 KiB-aligned range.
// The fifth capability, VIRTIO_PCI_CAP_PCI_CFG (4.1.4.9), is a window: the driver writes
// bar/offset/length, then a config access to pci_cfg_data reads or writes the BAR there.
//
// Interrupts: MSI-X only, with num_queues + 1 vectors; msix_config and queue_msix_vector
// map events to vectors (4.1.5.1.2), VIRTIO_MSI_NO_VECTOR (0xffff) leaves one unmapped,
// and a vector beyond the table is stored as NO_VECTOR (the driver sees the failure on
// read-back). Vireo's PCI host bridge has no _PRT, so there is no INTx fallback: the
// Interrupt Pin is 0, and an event while MSI-X is disabled only sets the ISR bit and is
// counted as lost. Every interrupt goes through Msix::Notify(vector).
//
// Toward the device it behaves as MmioTransport does: features are the device's plus
// VERSION_1, EVENT_IDX and INDIRECT_DESC, and FEATURES_OK sticks only for a subset that
// includes VERSION_1; the status machine of status.h; queue fields are frozen once the
// queue is enabled or DRIVER_OK is set; writing 0 to device_status resets; a queue that
// fails validation or a failed activation sets DEVICE_NEEDS_RESET with a config interrupt.
// Accesses of the wrong width (4.1.3.1), writes to read-only fields, and every other guest
// mistake are ignored (reads give 0) and counted. No VIRTIO_F_RING_RESET (queue_reset
// reads 0), no VIRTIO_F_NOTIF_CONFIG_DATA (queue_notify_data reads the queue index).
//
// Threading: config space and BAR accesses come from vCPU threads (config space with the
// PciBus lock held) and take the transport lock, under which the device is called (lock
// order: transport, device, MSI-X). NotifyQueue hands the notification to the device
// outside the transport lock and may be called from an I/O thread (ioeventfd). The device
// signals through atomics and Msix::Notify, never taking the transport lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/bus_device.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/status.h"
#include "virtio/transport_state.h"

namespace vireo::virtio {

struct PciCounters {
  uint64_t bad_access_size = 0;      // wrong width or alignment for a register (4.1.3.1)
  uint64_t bad_register = 0;         // read-only field written, notify read, or a hole
  uint64_t refused_writes = 0;       // queue/feature writes in the wrong state or bad select
  uint64_t refused_status = 0;       // out-of-order status writes and rejected FEATURES_OK
  uint64_t early_notifications = 0;  // notify before DRIVER_OK
  uint64_t bad_notifications = 0;    // notify of a queue that does not exist
  uint64_t invalid_queues = 0;       // queue_enable = 1 refused by Queue::Activate
  uint64_t activation_failures = 0;
  uint64_t bad_config_access = 0;    // device-specific configuration access the device refused
  uint64_t bad_vectors = 0;          // a vector beyond the MSI-X table: NO_VECTOR stored instead
  uint64_t bad_window = 0;           // VIRTIO_PCI_CAP_PCI_CFG with a bad bar/offset/length
  uint64_t notifications = 0;        // notifications handed to the device
  uint64_t interrupts = 0;           // MSI-X messages sent
  uint64_t pending_interrupts = 0;   // left pending on a masked vector
  uint64_t unmapped_interrupts = 0;  // events whose vector is NO_VECTOR
  uint64_t lost_interrupts = 0;      // events while MSI-X is disabled (no INTx)
};

class PciTransport : public pci::PciDevice {
 public:
  static constexpr uint16_t kVendorId = 0x1af4;      // 4.1.2
  static constexpr uint16_t kDeviceIdBase = 0x1040;  // 4.1.2.1: 0x1040 + device type
  static constexpr uint8_t kRevision = 1;            // 4.1.2.1: non-transitional
  static constexpr uint16_t kSubsystemId = 0x40;
  static constexpr int kBar = 4;
  static constexpr uint64_t kCommonCfgOffset = 0x0000;
  static constexpr uint64_t kIsrOffset = 0x1000;
  static constexpr uint64_t kIsrLength = 1;
  static constexpr uint64_t kDeviceCfgOffset = 0x2000;
  static constexpr uint64_t kDeviceCfgLength = 0x1000;
  static constexpr uint64_t kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyOffMultiplier = 4;
  static constexpr uint8_t kIsrQueue = 1;                      // 4.1.4.5
  static constexpr uint8_t kIsrConfig = 2;                     // 4.1.4.5
  static constexpr uint16_t kNoVector = pci::msix::kNoVector;  // VIRTIO_MSI_NO_VECTOR
  static constexpr uint64_t kTransportFeatures = kFVersion1 | kFEventIdx | kFIndirectDesc;

  // `memory` and `sink` must outlive the transport. The device must have 1 to 2047
  // queues (a VMM invariant: aborts otherwise).
  PciTransport(const GuestMemory& memory, std::shared_ptr<VirtioDevice> device, pci::MsiSink& sink);
  ~PciTransport() override;

  // ---- pci::PciDevice ----
  std::string_view name() const override;
  void ConfigRead(uint16_t offset, std::span<uint8_t> data) override;
  void ConfigWrite(uint16_t offset, std::span<const uint8_t> data) override;
  std::span<const pci::BarDefinition> bars() const override;
  BusDevice* bar_device(int bar) override;
  void BarMoved(int bar, uint64_t old_address, uint64_t new_address) override;

  // ---- Notifications (4.1.4.4). ----
  // Where the driver writes to notify `queue`: BAR 4's address + kNotifyOffset + 4 *
  // queue; nullopt while the BAR is unmapped or for no such queue.
  std::optional<uint64_t> notify_address(uint16_t queue) const;
  // Called from BarMoved (with the PciBus lock held) for every queue whose notify address
  // changed; nullopt means "none". Set it before PciBus::AddDevice to hear the first
  // mapping. The listener must not call back into the PciBus or this transport's BARs.
  using NotifyAddressListener = std::function<void(
      uint16_t queue, std::optional<uint64_t> old_address, std::optional<uint64_t> new_address)>;
  void SetNotifyAddressListener(NotifyAddressListener listener);
  // An available-buffer notification for `queue`, as a write to its notify address makes;
  // the ioeventfd path calls it from the I/O thread. Checked and counted like one.
  void NotifyQueue(uint16_t queue);

  VirtioDevice& device() { return *device_; }
  uint64_t offered_features() const { return offered_features_; }
  uint64_t bar_size() const { return bar_size_; }
  uint64_t msix_table_offset() const { return msix_table_offset_; }
  uint64_t msix_pba_offset() const { return msix_pba_offset_; }
  const pci::Msix& msix() const { return *msix_; }
  PciCounters counters() const;

  // ---- Snapshot (transport_persist.cc). The VM is paused: no vCPU or device thread runs.
  TransportState SaveState() const;
  // Into a freshly built transport (status 0). Validates every value as the guest-facing
  // setters would, restores configuration space (writable bits only) and the MSI-X table,
  // the queues through Queue::Restore, and at DRIVER_OK activates the device. The caller
  // then calls PciBus::RefreshBars so the BAR moves to its saved address (and the notify
  // ioeventfds follow). On error the transport is reset.
  Status RestoreState(const TransportState& state);
  // After a restore, once the whole machine is: hands every queue to the device as a guest
  // kick would. A kick the guest made just before the pause can be left unread in its
  // ioeventfd and is not in the saved state; a queue with no new buffers is left as it is.
  void NotifyAllQueues();

 private:
  class Interrupt : public QueueInterrupt {
   public:
    explicit Interrupt(PciTransport& transport) : transport_(transport) {}
    void SignalUsed(uint16_t queue_index) override;
    void SignalConfigChange() override;

   private:
    PciTransport& transport_;
  };

  // BAR 4 as the router sees it; offsets are BAR-relative.
  class BarHandler : public BusDevice {
   public:
    explicit BarHandler(PciTransport& transport) : transport_(transport) {}
    std::string_view name() const override { return transport_.name(); }
    void Read(uint64_t offset, std::span<uint8_t> data) override;
    void Write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    PciTransport& transport_;
  };

  // The VIRTIO_PCI_CAP_PCI_CFG window, when the driver programmed a usable one.
  struct Window {
    uint64_t offset;
    size_t length;
  };

  void AddVirtioCapability(uint8_t cfg_type, uint8_t length, uint64_t offset, uint64_t size);
  void BarRead(uint64_t offset, std::span<uint8_t> data);
  void BarWrite(uint64_t offset, std::span<const uint8_t> data);
  std::optional<Window> WindowLocked();
  void Raise(uint8_t isr_bits, uint16_t vector);

  // Common configuration (4.1.4.3), under mu_.
  void CommonRead(uint64_t offset, std::span<uint8_t> data);
  void CommonWrite(uint64_t offset, std::span<const uint8_t> data);
  uint64_t FieldValue(uint64_t field);
  void WriteField(uint64_t field, uint64_t value, uint64_t offset, size_t size);
  void WriteQueueField(uint64_t field, uint64_t value, uint64_t offset, size_t size);
  void WriteStatus(uint64_t value);
  uint16_t CheckedVector(uint64_t value);
  void ResetLocked();
  Queue* SelectedQueue();
  bool FeaturesAcceptable() const;

  const GuestMemory& memory_;
  const std::shared_ptr<VirtioDevice> device_;
  const uint64_t offered_features_;
  const std::string name_;
  const uint16_t num_queues_;
  const uint64_t notify_length_;
  const uint64_t msix_table_offset_;
  const uint64_t msix_pba_offset_;
  const uint64_t bar_size_;
  Interrupt interrupt_{*this};
  BarHandler bar_handler_{*this};

  // Event-to-vector maps and ISR: read by device threads without the transport lock.
  std::atomic<uint16_t> msix_config_{kNoVector};
  std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
  std::atomic<uint8_t> isr_{0};
  std::atomic<uint32_t> config_generation_{0};
  std::atomic<uint64_t> bar_address_{pci::kBarUnmapped};
  std::atomic<uint64_t> interrupts_{0};
  std::atomic<uint64_t> pending_interrupts_{0};
  std::atomic<uint64_t> unmapped_interrupts_{0};
  std::atomic<uint64_t> lost_interrupts_{0};
  std::atomic<uint64_t> bad_vectors_{0};

  mutable std::mutex mu_;
  // Guarded by mu_. Queues change only while the device is inactive (before DRIVER_OK).
  pci::ConfigSpace config_;
  std::unique_ptr<pci::Msix> msix_;  // set in the constructor; thread-safe itself
  uint8_t pci_cfg_cap_ = 0;          // offset of the VIRTIO_PCI_CAP_PCI_CFG capability
  std::vector<Queue> queues_;
  DeviceStatus status_;
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  uint64_t driver_features_ = 0;
  uint16_t queue_select_ = 0;
  bool device_active_ = false;
  NotifyAddressListener listener_;
  PciCounters counters_;
};

}  // namespace vireo::virtio
