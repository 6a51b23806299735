// The snapshot encoding of the virtio transports' state and the PCI bus's own registers
// (docs/snapshot-migration.md, "The state file", item 8). Decoding bounds every count and
// length; the values themselves are validated when the transports restore them.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "virtio/balloon/balloon_state.h"
#include "virtio/net/net_state.h"
#include "virtio/transport_state.h"
#include "virtio/vsock/vsock_state.h"
#include "vmm/snapshot/state_codec.h"

namespace vireo::snapshot {

struct VirtioStates {
  // virtio-pci only: the host bridge's configuration space (256 bytes; empty on mmio) and
  // the 0xCF8 CONFIG_ADDRESS latch.
  std::vector<uint8_t> host_bridge;
  uint32_t pci_config_address = 0;
  // One per virtio device, in the order the configuration creates them.
  std::vector<virtio::TransportState> transports;
  // The devices' own state beyond their transports, encoded as device records
  // (device_records.h; format version 2 on): one per network device in configuration order,
  // the balloon's and vsock's when the VM has them.
  std::vector<virtio::NetSavedState> nets;
  std::optional<virtio::balloon::BalloonSavedState> balloon;
  std::optional<virtio::VsockSavedState> vsock;
};

void Put(StateWriter& w, const VirtioStates& v);
void Get(StateReader& r, VirtioStates& v);

}  // namespace vireo::snapshot
