// virtio-net transmit path (virtio 1.2, 5.1.6.2 "Packet Transmission"): each chain's
// readable buffers, header then frame, go to the tap in one writev over guest memory.
#include <errno.h>
#include <net/ethernet.h>
#include <sys/uio.h>

#include "virtio/net/net.h"

namespace vireo::virtio {

void Net::ProcessTx() {
  if (tx_ == nullptr || !tx_->ready() || needs_reset_) return;
  if (tx_blocked_ && !WriteTxChain()) return;  // still blocked: wait for EPOLLOUT
  for (uint32_t round = 0;; ++round) {
    if (round == kTxBurst) {  // come back through the eventfd after other fds ran
      notify_[kTxQueue].Signal();
      return;
    }
    const PopResult result = tx_->Pop(*memory_, tx_chain_);
    if (result == PopResult::kEmpty) return;
    if (result == PopResult::kBroken) {
      MarkBroken();
      return;
    }
    if (result == PopResult::kBadChain || !ValidTxChain()) {
      counters_.tx_bad_chains++;
      used_pending_[kTxQueue] |= tx_->AddUsed(*memory_, tx_chain_.head(), 0);
      continue;
    }
    if (!WriteTxChain()) return;
  }
}

bool Net::ValidTxChain() {
  // 5.1.6.2: the header and the frame, device-readable only; the frame at least an
  // Ethernet header and at most the largest (GSO) frame.
  const auto readable = tx_chain_.readable();
  if (!tx_chain_.writable().empty() || readable.size() > tx_iov_.size() ||
      tx_chain_.readable_len() < sizeof(VirtioNetHdr) + ETH_HLEN ||
      tx_chain_.readable_len() > kMaxPacketBytes) {
    return false;
  }
  tx_iov_count_ = 0;
  for (const ChainBuffer& buffer : readable) {
    if (buffer.len == 0) continue;
    auto span = memory_->Span(buffer.addr, buffer.len);
    if (!span) return false;
    tx_iov_[tx_iov_count_++] = iovec{span->data(), span->size()};
  }
  return true;
}

bool Net::WriteTxChain() {
  ssize_t n = -1;
  // Bounded: EINTR is retried a few times, then the frame counts as dropped.
  for (int attempt = 0; attempt < 4; ++attempt) {
    n = ::writev(tap_.fd(), tx_iov_.data(), static_cast<int>(tx_iov_count_));
    if (n >= 0 || errno != EINTR) break;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
    if (!tx_blocked_) counters_.tx_blocked++;
    tx_blocked_ = true;  // the chain waits in tx_chain_; UpdateInterest adds EPOLLOUT
    return false;
  }
  tx_blocked_ = false;
  if (n < 0) {
    counters_.tx_dropped++;  // e.g. EINVAL: the kernel refused the guest's header
  } else {
    counters_.tx_packets++;
    counters_.tx_bytes += tx_chain_.readable_len() - sizeof(VirtioNetHdr);
  }
  used_pending_[kTxQueue] |= tx_->AddUsed(*memory_, tx_chain_.head(), 0);
  return true;
}

}  // namespace vireo::virtio
