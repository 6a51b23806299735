// virtio-net receive path (virtio 1.2, 5.1.6.3 "Setting Up Receive Buffers", 5.1.6.4
// "Processing of Incoming Packets"): frames are read from the tap with readv straight into
// held rx chains, with the bounce buffer last; see net.h for the design.
#include <errno.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "virtio/net/net.h"

namespace vireo::virtio {
namespace {

constexpr size_t kNumBuffersOffset = offsetof(VirtioNetHdr, num_buffers);

// Copies `data` into the byte stream the iovecs form, from `offset` on. The iovecs are
// spans GuestMemory handed out; the caller made sure the stream is long enough.
void CopyToIov(std::span<const iovec> iov, size_t offset, std::span<const uint8_t> data) {
  for (const iovec& v : iov) {
    if (data.empty()) return;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    const size_t n = std::min(v.iov_len - offset, data.size());
    std::memcpy(static_cast<uint8_t*>(v.iov_base) + offset, data.data(), n);
    data = data.subspan(n);
    offset = 0;
  }
}

}  // namespace

void Net::ProcessRx() {
  if (rx_ == nullptr || !rx_->ready() || needs_reset_) return;
  bool out_of_buffers = false;
  for (uint32_t round = 0; round < kRxBurst; ++round) {
    if (pending_len_ > 0) {
      out_of_buffers = !FinishPending();
      if (needs_reset_) return;
      if (out_of_buffers) break;
      continue;
    }
    HoldChains(mergeable_ ? kMaxPacketBytes : 1);
    if (needs_reset_) return;
    out_of_buffers = held_count_ == 0;
    if (out_of_buffers) break;
    if (ReadFrame() == ReadResult::kEmpty) return;  // until EPOLLIN
  }
  // After a full burst the tap stays readable and the loop calls again. Out of buffers:
  // stop reading until the next rx notify; frames wait in the tap's queue.
  if (out_of_buffers) {
    if (!rx_waiting_) counters_.rx_waits++;
    rx_waiting_ = true;
  }
}

bool Net::HoldLimitReached() const {
  return held_count_ >= std::min<size_t>(held_.size(), rx_->size()) ||
         held_iov_ + kMaxIovPerRxChain > rx_iov_.size() - 1 || (!mergeable_ && held_count_ > 0);
}

void Net::HoldChains(size_t target) {
  // Bounded: each round pops one chain; bad chains cannot keep us here past 2 rings' worth.
  for (uint32_t round = 0; round < 2u * rx_->size(); ++round) {
    if (held_capacity_ >= target || HoldLimitReached()) return;
    const PopResult result = rx_->Pop(*memory_, rx_chain_);
    if (result == PopResult::kEmpty) return;
    if (result == PopResult::kBroken) {
      MarkBroken();
      return;
    }
    if (result == PopResult::kBadChain) {
      counters_.rx_bad_chains++;
      used_pending_[kRxQueue] |= rx_->AddUsed(*memory_, rx_chain_.head(), 0);
      continue;
    }
    HoldChain();
  }
}

void Net::HoldChain() {
  // 5.1.6.3: receive buffers are device-writable and at least a header long.
  HeldChain held{rx_chain_.head(), static_cast<uint16_t>(rx_->next_avail() - 1),
                 static_cast<uint16_t>(held_iov_), 0, 0};
  bool ok = rx_chain_.readable().empty();
  for (const ChainBuffer& buffer : rx_chain_.writable()) {
    if (!ok || held.iov_count == kMaxIovPerRxChain) break;
    if (buffer.len == 0) continue;
    auto span = memory_->Span(buffer.addr, buffer.len);
    if (!span) {
      ok = false;
      break;
    }
    rx_iov_[held_iov_ + held.iov_count++] = iovec{span->data(), span->size()};
    held.capacity += buffer.len;
  }
  if (!ok || held.capacity < sizeof(VirtioNetHdr)) {
    counters_.rx_bad_chains++;
    used_pending_[kRxQueue] |= rx_->AddUsed(*memory_, held.head, 0);
    return;
  }
  held_[held_count_++] = held;
  held_iov_ += held.iov_count;
  held_capacity_ += held.capacity;
}

Net::ReadResult Net::ReadFrame() {
  rx_iov_[held_iov_] = iovec{bounce_.data(), bounce_.size()};
  const ssize_t n = ::readv(tap_.fd(), rx_iov_.data(), static_cast<int>(held_iov_ + 1));
  if (n < 0) {
    if (errno == EINTR) return ReadResult::kAgain;
    if (errno != EAGAIN && errno != EWOULDBLOCK) counters_.rx_errors++;
    return ReadResult::kEmpty;  // wait for EPOLLIN
  }
  const auto len = static_cast<size_t>(n);
  if (len < sizeof(VirtioNetHdr)) {
    counters_.rx_errors++;  // the tap always writes the header
    return ReadResult::kAgain;
  }
  if (len <= held_capacity_) {
    CompleteFrame(len);
  } else if (!mergeable_ || len > held_capacity_ + bounce_.size()) {
    // Larger than the one chain a frame may use (5.1.6.3.1: the driver SHOULD post 1526 or
    // 65562 bytes), or truncated by the tap. The chains stay held for the next frame.
    counters_.rx_dropped++;
  } else {
    pending_len_ = len;  // the ring ran dry: the tail waits in the bounce buffer
    pending_split_ = held_capacity_;
  }
  return ReadResult::kAgain;
}

bool Net::FinishPending() {
  HoldChains(pending_len_);
  if (needs_reset_) return false;
  if (held_capacity_ >= pending_len_) {
    CopyToIov(std::span(rx_iov_).first(held_iov_), pending_split_,
              std::span(bounce_).first(pending_len_ - pending_split_));
    CompleteFrame(pending_len_);
    pending_len_ = 0;
    return true;
  }
  if (HoldLimitReached()) {
    counters_.rx_dropped++;  // no ring of this size can hold it
    pending_len_ = 0;
    return true;
  }
  return false;
}

void Net::CompleteFrame(size_t len) {
  // The frame fills held chains 0..count-1 in order (5.1.6.4: num_buffers is the number of
  // descriptor chains it spans; 1 without MRG_RXBUF).
  size_t count = 0;
  for (size_t covered = 0; covered < len; ++count) covered += held_[count].capacity;
  const auto num_buffers = static_cast<uint16_t>(count);
  // The tap skipped num_buffers; chain 0 holds the whole header (HoldChain checked).
  CopyToIov(std::span(rx_iov_).first(held_iov_), kNumBuffersOffset,
            {reinterpret_cast<const uint8_t*>(&num_buffers), sizeof(num_buffers)});
  // readv wrote the frame straight into guest RAM, which no accelerator's dirty log sees.
  const size_t frame_iov = count < held_count_ ? held_[count].iov_begin : held_iov_;
  for (size_t i = 0; i < frame_iov; ++i) {
    memory_->MarkWrittenHost(rx_iov_[i].iov_base, rx_iov_[i].iov_len);
  }
  size_t remaining = len;
  for (size_t i = 0; i < count; ++i) {
    const auto used = static_cast<uint32_t>(std::min<size_t>(held_[i].capacity, remaining));
    remaining -= used;
    used_pending_[kRxQueue] |= rx_->AddUsed(*memory_, held_[i].head, used);
  }
  counters_.rx_packets++;
  counters_.rx_bytes += len - sizeof(VirtioNetHdr);
  // Shift the chains still held to the front.
  for (size_t i = 0; i < count; ++i) held_capacity_ -= held_[i].capacity;
  const size_t iov_shift = count < held_count_ ? held_[count].iov_begin : held_iov_;
  std::copy(rx_iov_.begin() + static_cast<ptrdiff_t>(iov_shift),
            rx_iov_.begin() + static_cast<ptrdiff_t>(held_iov_), rx_iov_.begin());
  for (size_t i = count; i < held_count_; ++i) {
    held_[i - count] = held_[i];
    held_[i - count].iov_begin = static_cast<uint16_t>(held_[i].iov_begin - iov_shift);
  }
  held_count_ -= count;
  held_iov_ -= iov_shift;
}

void Net::DropHeld() {
  held_count_ = 0;
  held_iov_ = 0;
  held_capacity_ = 0;
  pending_len_ = 0;
  pending_split_ = 0;
}

}  // namespace vireo::virtio
