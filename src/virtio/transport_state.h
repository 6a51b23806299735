// The state of a virtio transport and its queues as plain data, for snapshots (rule 4):
// what the driver programmed (status, feature selection, queue setup, MSI-X vectors and
// table, PCI configuration space) and the device's own positions in each ring. The
// transports restore it through their validating setters and Queue::Restore, so a hostile
// snapshot can make no queue or vector a driver could not (docs/snapshot-migration.md).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "virtio/queue.h"

namespace vireo::virtio {

struct TransportState {
  uint8_t status = 0;  // 2.1 device status
  uint32_t device_features_select = 0;
  uint32_t driver_features_select = 0;
  uint64_t driver_features = 0;
  uint32_t queue_select = 0;  // 16 bits on pci
  uint32_t config_generation = 0;
  uint8_t interrupt_status = 0;  // ISR (pci 4.1.4.5) or InterruptStatus (mmio 4.2.2)
  std::vector<QueueState> queues;
  // virtio-pci only (empty on mmio): msix_config, queue_msix_vector per queue, the
  // function's configuration space (BARs, Command, MSI-X Enable/Function Mask) and the
  // MSI-X table and PBA.
  uint16_t config_vector = pci::msix::kNoVector;
  std::vector<uint16_t> queue_vectors;
  std::vector<uint8_t> pci_config;  // pci::kConfigSpaceSize bytes
  pci::MsixState msix;

  bool operator==(const TransportState&) const = default;
};

}  // namespace vireo::virtio
