// A test-side virtio-pci driver: plugs a PciTransport into its own PciBus and drives it
// the way Linux's virtio_pci_modern does, through configuration space and MMIO at absolute
// addresses routed by the bus (virtio 1.2, 4.1.4 capabilities, 4.1.5 initialization).
// Tests only: it trusts its inputs and writes whatever garbage a hostile test asks for.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "devices/pci/pci_bus.h"
#include "virtio/pci_transport.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio::testing {

// One vendor-specific capability as the driver reads it (struct virtio_pci_cap, 4.1.4).
struct VirtioPciCap {
  uint8_t at = 0;  // its offset in configuration space
  uint8_t cap_len = 0;
  uint8_t bar = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint32_t notify_off_multiplier = 0;  // VIRTIO_PCI_CAP_NOTIFY_CFG only
};

class PciTestDriver {
 public:
  static constexpr pci::BarWindow kMmioWindow{0xc0000000, 0xe0000000};

  // Adds `transport` to a fresh bus (BAR 4 assigned, decoding on), as firmware would.
  explicit PciTestDriver(std::shared_ptr<PciTransport> transport);

  pci::PciBus& bus() { return bus_; }
  int slot() const { return slot_; }

  // Configuration space through the bus (1, 2 or 4 bytes).
  uint32_t Cfg(uint16_t offset, size_t size);
  void SetCfg(uint16_t offset, size_t size, uint32_t value);
  // BAR 4's address as configuration space says now.
  uint64_t BarBase();
  // MMIO at an absolute address, as a vCPU's exit reaches the bus's router (1-8 bytes).
  uint64_t Mmio(uint64_t address, size_t size);
  void SetMmio(uint64_t address, size_t size, uint64_t value);
  // MMIO at an offset in BAR 4.
  uint64_t Bar(uint64_t offset, size_t size) { return Mmio(BarBase() + offset, size); }
  void SetBar(uint64_t offset, size_t size, uint64_t value) {
    SetMmio(BarBase() + offset, size, value);
  }
  uint8_t Status();
  void SetStatus(uint8_t value);

  // The capability list walked from the Capabilities Pointer (bounded), virtio caps by
  // cfg_type; the MSI-X capability's offset in `msix_at` when given.
  std::map<uint8_t, VirtioPciCap> VirtioCaps(uint8_t* msix_at = nullptr);
  // MSI-X on, vector v's message = (address | v << 12, data + v), every vector unmasked,
  // as pci_enable_msix and request_irq leave it. False when there is no MSI-X capability.
  bool EnableMsix(uint64_t address, uint32_t data);
  // 3.1.1 up to FEATURES_OK: reset, ACKNOWLEDGE, DRIVER, both feature words, FEATURES_OK.
  // Returns device_status read back.
  uint8_t Negotiate(uint64_t features);
  // 4.1.5.1.3: queue_select, queue_size, rings as 32-bit halves, queue_msix_vector,
  // queue_enable.
  void SetupQueue(uint16_t index, const TestDriver& driver, uint16_t vector);
  // A 16-bit write of the queue index at the queue's notify address (4.1.4.4).
  void Kick(uint16_t queue);

 private:
  std::shared_ptr<PciTransport> transport_;
  pci::PciBus bus_{kMmioWindow};
  int slot_ = -1;
};

}  // namespace vireo::virtio::testing
