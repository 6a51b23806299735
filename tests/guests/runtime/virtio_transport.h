// The driver core's view of a virtio transport (virtio 1.2 chapter 4): device status, feature
// bits, queue set-up, notifications, interrupts and device configuration, over virtio-mmio (4.2,
// virtio_mmio.h) or virtio-pci (4.1, virtio_pci.h).
//
// Transport is a tagged union dispatched by a switch rather than a class with virtual functions:
// a Device lives in static storage and the runtime runs no constructors, so it may hold no vtable
// pointer (all-zero must be a valid, closed transport).
#pragma once

#include <stdint.h>

#include "boot_info.h"
#include "virtio_mmio.h"
#include "virtio_pci.h"

namespace rt::virtio {

enum class TransportKind : uint8_t { kNone, kMmio, kPci };
const char* TransportName(TransportKind kind);

// Where one device is.
struct Location {
  TransportKind kind;
  MmioSlot mmio;  // kMmio
  PciDevice pci;  // kPci
};

// Finds the `instance`-th device of type `device_id`. The cmdline's "virtio.transport=" picks the
// transport: "mmio" (virtio_mmio.h's FindDevice), "pci" (bus 0 only), or by default PCI when the
// ACPI tables have an MCFG and bus 0 holds such a device, else virtio-mmio, else (no MCFG) PCI
// through whatever configuration access answers.
bool FindDevice(const BootInfo& info, uint32_t device_id, Location& out, int instance = 0);

class Transport {
 public:
  // False (with a message) if the device is not a modern virtio device of this transport.
  bool Open(const Location& where);
  TransportKind kind() const { return kind_; }
  const Location& location() const { return where_; }
  uint32_t DeviceType() const;

  uint32_t Status() const;
  void SetStatus(uint32_t status) const;
  uint64_t DeviceFeatures() const;
  void SetDriverFeatures(uint64_t features) const;

  uint32_t QueueMax(int q) const;  // selects queue q; 0: no such queue
  bool QueueEnabled(int q) const;
  // Size, ring addresses and (PCI, when interrupts are on) the MSI-X vector, then ready. False if
  // the device refused the vector.
  bool SetUpQueue(int q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
  void Notify(int q) const;

  // Interrupt delivery to this CPU: virtio-mmio routes the slot's GSI (edge, high) to
  // `queue_vector` through the IOAPIC; virtio-pci programs MSI-X (configuration changes on
  // `config_vector`, queues on `queue_vector`). False if there is no route.
  bool EnableInterrupts(uint8_t queue_vector, uint8_t config_vector);
  // The causes (kInterruptUsedBuffer, kInterruptConfigChange) of an interrupt that arrived on the
  // queue or the configuration vector, acknowledged where the transport needs it.
  uint32_t TakeInterruptCauses(bool on_config_vector);

  uint32_t ConfigGeneration() const;
  uint8_t Config8(uint32_t off) const;
  uint16_t Config16(uint32_t off) const;
  uint32_t Config32(uint32_t off) const;
  void SetConfig32(uint32_t off, uint32_t value) const;  // a driver-writable field (5.5.4 actual)

 private:
  TransportKind kind_;
  bool msix_;
  bool reopened_;  // Open of the same PCI function again (after a reset): print less
  uint16_t queue_msix_entry_;
  Location where_;
  MmioRegs mmio_;
  PciTransport pci_;
};
static_assert(__is_trivially_constructible(Transport));

}  // namespace rt::virtio
