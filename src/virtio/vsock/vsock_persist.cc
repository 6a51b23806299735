// virtio-vsock snapshot state (vsock_state.h) and the transport reset event a restored
// device owes the guest (virtio 1.2, 5.10.6.6 "Device Events").
#include "base/log.h"
#include "virtio/descriptor_io.h"
#include "virtio/vsock/vsock.h"

namespace vireo::virtio {
namespace {

constexpr uint32_t kEventTransportReset = 0;  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET

}  // namespace

VsockSavedState Vsock::SaveState() const { return VsockSavedState{config_.guest_cid}; }

Status Vsock::RestoreState(const VsockSavedState& state) {
  std::lock_guard lock(mu_);
  if (active_ || registered_) return Fail("virtio-vsock: restoring into an active device");
  if (state.guest_cid != config_.guest_cid) {
    return Fail("virtio-vsock: the snapshot's guest CID {} is not the device's {}", state.guest_cid,
                config_.guest_cid);
  }
  reset_event_ = true;
  return {};
}

void Vsock::SendTransportReset() {
  if (event_ == nullptr || !event_->ready() || needs_reset_) return;
  // Bounded: bad chains are completed and skipped, at most a ring's worth.
  for (uint32_t round = 0; round < event_->size(); ++round) {
    const PopResult result = event_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) return;  // sent when the driver posts a buffer
    if (result == PopResult::kBroken) return Broken();
    uint32_t len = 0;
    if (result == PopResult::kChain) {
      // struct virtio_vsock_event { le32 id; }
      ChainWriter writer(*memory_, chain_);
      if (writer.WriteObj(kEventTransportReset)) len = sizeof(kEventTransportReset);
    }
    if (len == 0) counters_.bad_chains++;
    const bool used = event_->AddUsed(*memory_, chain_.head(), len);
    if (len == 0) continue;
    reset_event_ = false;
    counters_.transport_resets++;
    if (used && event_->NeedsNotification(*memory_)) interrupt_->SignalUsed(kEventQueue);
    return;
  }
}

}  // namespace vireo::virtio
