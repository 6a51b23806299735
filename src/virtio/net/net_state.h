// virtio-net's own snapshot state as plain data (rule 4; docs/snapshot-migration.md). The
// transport state (transport_state.h) carries the queues and the negotiated features; the
// tap is not state: it is re-attached by name from the VM's configuration.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace vireo::virtio {

struct NetSavedState {
  std::array<uint8_t, 6> mac{};  // config mac (5.1.4): the guest knows its MAC by it
  uint16_t status = 0;           // config status: VIRTIO_NET_S_LINK_UP
  // A frame (its virtio_net_hdr_v1, then the Ethernet frame) read from the tap that had not
  // wholly gone into guest buffers: the rx ring ran dry while it was being received. The
  // restored device delivers it before reading the tap again. Empty when none.
  std::vector<uint8_t> rx_pending;

  bool operator==(const NetSavedState&) const = default;
};

}  // namespace vireo::virtio
