// virtio-vsock's own snapshot state as plain data (rule 4; docs/snapshot-migration.md).
// Host connections cannot be carried (their sockets belong to host processes), so nothing of
// them is saved: the restored device has none, and it tells the guest with a
// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (5.10.6.6) so the guest's sockets reset instead of
// hanging.
#pragma once

#include <cstdint>

namespace vireo::virtio {

struct VsockSavedState {
  uint64_t guest_cid = 0;  // checked against the configuration on restore

  bool operator==(const VsockSavedState&) const = default;
};

}  // namespace vireo::virtio
