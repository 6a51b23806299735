// virtio-mmio transport, version 2 (virtio 1.2, 4.2 "Virtio Over MMIO").
//
// One device in one 4 KiB slot: the register table of 4.2.2 at offsets 0..0xff, the
// device's configuration space from 0x100. Registers are 32 bits wide; other access sizes
// to them read 0 and are dropped (4.2.2.2: "The driver MUST only use 32 bit wide and
// aligned reads and writes") and counted. Config space takes 1, 2, 4 and 8 byte accesses.
//
// Interrupts (4.2.3.4): InterruptStatus bit 0 (used buffer) or bit 1 (config change) is
// set and the line is pulsed, as the ISA line the slot is wired to is edge-triggered;
// InterruptACK clears bits. Offered features: the device's own plus VERSION_1, EVENT_IDX
// and INDIRECT_DESC; FEATURES_OK sticks only if the driver's selection is a subset that
// includes VERSION_1 (no legacy interface). No shared memory regions (SHMLen reads ~0)
// and no VIRTIO_F_RING_RESET (QueueReset reads 0).
//
// VendorID is 0x45524956, "VIRE" in little-endian ASCII (Linux ignores it).
//
// Threading: Read/Write come from vCPU threads and take the transport lock, under which
// the device is called (lock order: transport, then device). QueueNotify is handed to the
// device by NotifyQueue() outside the transport lock, so it can move to an I/O thread.
// The device signals through an atomic InterruptStatus, never taking the transport lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/bus_device.h"
#include "devices/interrupt_line.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/status.h"
#include "virtio/transport_state.h"

namespace vireo::virtio {

struct MmioCounters {
  uint64_t bad_access_size = 0;      // non-32-bit register access
  uint64_t bad_register = 0;         // unknown offset, or a write to a read-only register
  uint64_t refused_writes = 0;       // queue/feature writes in the wrong state or bad QueueSel
  uint64_t refused_status = 0;       // out-of-order status writes and rejected FEATURES_OK
  uint64_t early_notifications = 0;  // QueueNotify before DRIVER_OK
  uint64_t bad_notifications = 0;    // QueueNotify with no such queue
  uint64_t invalid_queues = 0;       // QueueReady=1 refused by Queue::Activate
  uint64_t activation_failures = 0;
  uint64_t bad_config_access = 0;
  uint64_t notifications = 0;  // QueueNotify handed to the device
  uint64_t interrupts = 0;     // line pulses
};

class MmioTransport : public BusDevice {
 public:
  // 4.2.2 register offsets, named as in the spec's table.
  enum Register : uint64_t {
    kMagicValue = 0x000,
    kVersion = 0x004,
    kDeviceId = 0x008,
    kVendorId = 0x00c,
    kDeviceFeatures = 0x010,
    kDeviceFeaturesSel = 0x014,
    kDriverFeatures = 0x020,
    kDriverFeaturesSel = 0x024,
    kQueueSel = 0x030,
    kQueueNumMax = 0x034,
    kQueueNum = 0x038,
    kQueueReady = 0x044,
    kQueueNotify = 0x050,
    kInterruptStatus = 0x060,
    kInterruptAck = 0x064,
    kStatus = 0x070,
    kQueueDescLow = 0x080,
    kQueueDescHigh = 0x084,
    kQueueDriverLow = 0x090,
    kQueueDriverHigh = 0x094,
    kQueueDeviceLow = 0x0a0,
    kQueueDeviceHigh = 0x0a4,
    kShmSel = 0x0ac,
    kShmLenLow = 0x0b0,
    kShmLenHigh = 0x0b4,
    kShmBaseLow = 0x0b8,
    kShmBaseHigh = 0x0bc,
    kQueueReset = 0x0c0,
    kConfigGeneration = 0x0fc,
    kConfig = 0x100,
  };
  static constexpr uint32_t kMagic = 0x74726976;  // "virt"
  static constexpr uint32_t kVersion2 = 2;
  static constexpr uint32_t kVendor = 0x45524956;  // "VIRE"
  static constexpr uint32_t kInterruptUsedBuffer = 1;
  static constexpr uint32_t kInterruptConfigChange = 2;
  static constexpr uint64_t kTransportFeatures = kFVersion1 | kFEventIdx | kFIndirectDesc;

  // `memory` must outlive the transport. `irq` is pulsed for each interrupt.
  MmioTransport(const GuestMemory& memory, std::shared_ptr<VirtioDevice> device,
                std::shared_ptr<InterruptLine> irq);
  ~MmioTransport() override;

  std::string_view name() const override;
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  VirtioDevice& device() { return *device_; }
  uint64_t offered_features() const { return offered_features_; }
  MmioCounters counters() const;

  // ---- Snapshot (transport_persist.cc). The VM is paused: no vCPU or device thread runs.
  TransportState SaveState() const;
  // Into a freshly built transport (status 0): validates as the register writes would,
  // restores the queues through Queue::Restore and at DRIVER_OK activates the device. The
  // pci-only fields must be empty. On error the transport is reset.
  Status RestoreState(const TransportState& state);
  // After a restore, once the whole machine is: hands every queue to the device as a guest
  // kick would. A kick the guest made just before the pause can be left unread in its
  // ioeventfd and is not in the saved state; a queue with no new buffers is left as it is.
  void NotifyAllQueues();

 private:
  class Interrupt : public QueueInterrupt {
   public:
    explicit Interrupt(MmioTransport& transport) : transport_(transport) {}
    void SignalUsed(uint16_t queue_index) override;
    void SignalConfigChange() override;

   private:
    MmioTransport& transport_;
  };

  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);
  void WriteStatus(uint32_t value);
  void WriteQueueField(uint64_t offset, uint32_t value);
  // The single hand-off of an available-buffer notification to the device.
  void NotifyQueue(uint32_t index);
  void Raise(uint32_t bits);
  void ResetLocked();
  Queue* SelectedQueue();  // null when QueueSel names no queue
  bool FeaturesAcceptable() const;

  const GuestMemory& memory_;
  const std::shared_ptr<VirtioDevice> device_;
  const std::shared_ptr<InterruptLine> irq_;
  const uint64_t offered_features_;
  const std::string name_;
  Interrupt interrupt_{*this};

  // Set by devices from any thread; cleared by InterruptACK.
  std::atomic<uint32_t> interrupt_status_{0};
  std::atomic<uint32_t> config_generation_{0};
  std::atomic<uint64_t> interrupts_{0};

  mutable std::mutex mu_;
  // Guarded by mu_. Queues change only while the device is inactive (before DRIVER_OK).
  std::vector<Queue> queues_;
  DeviceStatus status_;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  bool device_active_ = false;
  MmioCounters counters_;
};

// The kernel command-line parameter that tells Linux about one virtio-mmio slot:
// "virtio_mmio.device=<size>@<base>:<irq>" (drivers/virtio/virtio_mmio.c), e.g.
// MmioCmdlineParam(0xfe000000, 0x1000, 5) == "virtio_mmio.device=4K@0xfe000000:5".
std::string MmioCmdlineParam(GuestAddress base, uint64_t size, uint32_t gsi);

}  // namespace vireo::virtio
