// virtio-net snapshot state (net_state.h): what the device holds beyond the transport's
// queues, and the announcement a restored device makes on its tap.
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "virtio/net/net.h"

namespace vireo::virtio {

NetSavedState Net::SaveState(QueueState& rx, QueueState& tx) const {
  std::lock_guard lock(mu_);
  NetSavedState state;
  state.mac = mac_;
  state.status = config_.status;
  // Held chains were popped in ring order (bad chains between them were completed at once
  // and stay completed: a snapshot re-pops them only if the driver broke the ring rules).
  if (held_count_ > 0) rx.next_avail = held_[0].avail_index;
  if (pending_len_ > 0) {
    // The frame's head went into the held chains' buffers, its tail waits in bounce_.
    state.rx_pending.resize(pending_len_);
    size_t copied = 0;
    for (size_t i = 0; i < held_iov_ && copied < pending_split_; ++i) {
      const size_t n = std::min(rx_iov_[i].iov_len, pending_split_ - copied);
      std::memcpy(state.rx_pending.data() + copied, rx_iov_[i].iov_base, n);
      copied += n;
    }
    std::memcpy(state.rx_pending.data() + copied, bounce_.data(), pending_len_ - copied);
  }
  // A blocked tx chain is the last one popped (transmission stops behind it).
  if (tx_blocked_) tx.next_avail = static_cast<uint16_t>(tx.next_avail - 1);
  return state;
}

Status Net::RestoreState(const NetSavedState& state) {
  std::lock_guard lock(mu_);
  if (active_ || registered_) return Fail("virtio-net: restoring into an active device");
  if (state.mac != mac_) {
    return Fail("virtio-net on tap '{}': the snapshot's MAC {} is not the device's {}", tap_.name(),
                FormatMac(state.mac), FormatMac(mac_));
  }
  if ((state.status & ~kNetSLinkUp) != 0) {
    return Fail("virtio-net: config status {:#x} has unknown bits", state.status);
  }
  if (!state.rx_pending.empty() && (state.rx_pending.size() < sizeof(VirtioNetHdr) ||
                                    state.rx_pending.size() > kMaxPacketBytes)) {
    return Fail("virtio-net: a pending receive frame of {} bytes (between {} and {})",
                state.rx_pending.size(), sizeof(VirtioNetHdr), kMaxPacketBytes);
  }
  config_.status = state.status;
  DropHeld();
  if (!state.rx_pending.empty()) {
    std::copy(state.rx_pending.begin(), state.rx_pending.end(), bounce_.begin());
    pending_len_ = state.rx_pending.size();
    pending_split_ = 0;  // all of it in bounce_: FinishPending copies it into the new chains
  }
  announce_ = true;
  return {};
}

void Net::Announce() {
  // A RARP request (RFC 903) from the guest's MAC to the broadcast address, behind a zero
  // virtio_net_hdr_v1: what QEMU's announce_self sends for a guest that cannot announce
  // itself. Vireo offers no VIRTIO_NET_F_GUEST_ANNOUNCE (it needs the control queue).
  struct [[gnu::packed]] Frame {
    VirtioNetHdr hdr;
    uint8_t dst[6], src[6];
    uint16_t ethertype;  // big-endian
    uint16_t htype, ptype;
    uint8_t hlen, plen;
    uint16_t op;
    uint8_t sha[6], spa[4], tha[6], tpa[4];
    uint8_t pad[18];  // to the 60-byte minimum frame
  } frame{};
  static_assert(sizeof(Frame) == sizeof(VirtioNetHdr) + 60);
  std::memset(frame.dst, 0xff, sizeof(frame.dst));
  std::copy(mac_.begin(), mac_.end(), frame.src);
  frame.ethertype = htons(ETHERTYPE_REVARP);
  frame.htype = htons(1);
  frame.ptype = htons(ETHERTYPE_IP);
  frame.hlen = 6, frame.plen = 4;
  frame.op = htons(3);  // reverse request
  std::copy(mac_.begin(), mac_.end(), frame.sha);
  std::copy(mac_.begin(), mac_.end(), frame.tha);
  if (::write(tap_.fd(), &frame, sizeof(frame)) == static_cast<ssize_t>(sizeof(frame))) {
    counters_.announcements++;
  } else {
    Log(LogLevel::kWarn, "virtio-net: announcing {} on tap '{}' failed: {}", FormatMac(mac_),
        tap_.name(), strerror(errno));
  }
}

}  // namespace vireo::virtio
