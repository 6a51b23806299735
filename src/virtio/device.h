// The virtio device model as a transport sees it (virtio 1.2, 2 "Basic Facilities of a
// Virtio Device", 3 "General Initialization And Device Operation").
//
// A VirtioDevice knows nothing of the transport or the VM: it reports its type, features,
// queues and config space, and once the driver sets DRIVER_OK it is activated with guest
// memory, its queues and a QueueInterrupt to signal through. It is inactive before
// Activate and after Reset; notifications while inactive are dropped.
//
// Threading: the transport calls every method from vCPU threads (QueueNotify perhaps from
// an I/O thread later); a device guards its own state. A device never calls back into the
// transport except through QueueInterrupt, which must not block.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"
#include "virtio/status.h"

namespace vireo::virtio {

// Device IDs (5 "Device Types").
inline constexpr uint32_t kDeviceIdConsole = 3;
inline constexpr uint32_t kDeviceIdEntropy = 4;

// Reserved feature bits the transport offers itself (6 "Reserved Feature Bits").
inline constexpr uint64_t kFIndirectDesc = 1ull << 28;  // VIRTIO_F_INDIRECT_DESC
inline constexpr uint64_t kFEventIdx = 1ull << 29;      // VIRTIO_F_EVENT_IDX
inline constexpr uint64_t kFVersion1 = 1ull << 32;      // VIRTIO_F_VERSION_1
// Bits a device may use for its own features (2.2: 0..23, and 50..127 beyond 64 bits).
inline constexpr uint64_t kDeviceFeatureMask = (1ull << 24) - 1;

// How a device tells the driver about used buffers and config changes (2.3, 4.2.3.4).
class QueueInterrupt {
 public:
  virtual ~QueueInterrupt() = default;
  // A used-buffer notification for `queue_index`; call only when Queue::NeedsNotification.
  virtual void SignalUsed(uint16_t queue_index) = 0;
  // A configuration change notification (also after the device sets NEEDS_RESET, 2.1.2).
  virtual void SignalConfigChange() = 0;
};

// What a device gets at DRIVER_OK. Valid until the device's Reset() returns.
struct ActivateContext {
  const GuestMemory& memory;
  std::span<Queue> queues;  // num_queues() entries; a queue the driver left unready is !ready()
  uint64_t features;        // negotiated: device bits and transport bits
  QueueInterrupt& interrupt;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual std::string_view name() const = 0;
  virtual uint32_t device_type() const = 0;
  // Device-specific feature bits only (within kDeviceFeatureMask); the transport adds
  // VERSION_1, EVENT_IDX and INDIRECT_DESC.
  virtual uint64_t device_features() const = 0;
  virtual uint16_t num_queues() const = 0;
  virtual uint16_t max_queue_size() const = 0;

  // Device configuration space (2.5). Out-of-range or partial accesses read zeros / are
  // dropped and return false.
  virtual bool ReadConfig(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) = 0;

  // DRIVER_OK: start using the queues. An error leaves the device inactive (the transport
  // then sets DEVICE_NEEDS_RESET).
  virtual Status Activate(ActivateContext context) = 0;
  // Stop using the queues and memory and return to the initial state (2.4).
  virtual void Reset() = 0;
  // An available buffer notification for queue `index` (2.3): process that queue.
  virtual void QueueNotify(uint16_t index) = 0;
  // The device hit an error only a reset clears (2.1.2 DEVICE_NEEDS_RESET).
  virtual bool needs_reset() const = 0;
  // The eventfd QueueNotify(queue) signals, for devices that do their queue work on an I/O
  // thread: the VMM hands it to KVM as an ioeventfd so a guest kick never exits to userspace.
  // -1 (the default) for devices that process notifications where QueueNotify is called.
  virtual int notify_fd(uint16_t /*queue*/) const { return -1; }
  // A notification that arrives on the device's own I/O thread (vhost-user's kick handler
  // runs there): a device with a notify_fd may process the queue at once rather than wake
  // its loop a second time through that eventfd.
  virtual void QueueNotifyOnIoThread(uint16_t index) { QueueNotify(index); }
};

// Bounds-checked copy from a device's config structure; zeros and false when the access
// does not lie wholly inside it.
bool ReadConfigBytes(std::span<const uint8_t> config, uint64_t offset, std::span<uint8_t> out);

// DRIVER_OK (3.1.1 step 8), shared by every transport: applies the negotiated ring
// features to the queues, then activates the device. On failure the transport sets
// DEVICE_NEEDS_RESET and tells the driver.
Status ActivateWithFeatures(VirtioDevice& device, const GuestMemory& memory,
                            std::span<Queue> queues, uint64_t features, QueueInterrupt& interrupt);

// The mmio and pci transports' DRIVER_OK: ActivateWithFeatures, and on failure a log line
// naming `transport`, DEVICE_NEEDS_RESET and a configuration change notification (2.1.2).
// Returns whether the device is active.
bool ActivateOrNeedReset(VirtioDevice& device, const GuestMemory& memory, std::span<Queue> queues,
                         uint64_t features, QueueInterrupt& interrupt, DeviceStatus& status,
                         std::string_view transport);

}  // namespace vireo::virtio
