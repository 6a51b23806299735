#include "virtio/vsock/connection.h"

#include <algorithm>
#include <cstring>

namespace vireo::virtio::vsock {

void ByteRing::Allocate() {
  if (data_.empty()) data_.resize(capacity_);
}

size_t ByteRing::Push(std::span<const uint8_t> data) {
  size_t done = 0;
  // At most two runs: up to the end of storage, then from its start.
  for (int run = 0; run < 2 && done < data.size(); ++run) {
    std::span<uint8_t> free = Writable();
    size_t n = std::min(free.size(), data.size() - done);
    if (n == 0) break;
    std::memcpy(free.data(), data.data() + done, n);
    Commit(n);
    done += n;
  }
  return done;
}

std::span<uint8_t> ByteRing::Writable() {
  if (space() == 0) return {};
  Allocate();
  size_t tail = (head_ + size_) % capacity_;
  size_t run = tail >= head_ && size_ < capacity_ ? capacity_ - tail : head_ - tail;
  if (size_ == 0) {
    head_ = 0;  // keep an empty ring's free space contiguous
    tail = 0;
    run = capacity_;
  }
  return std::span(data_).subspan(tail, std::min(run, space()));
}

void ByteRing::Commit(size_t n) { size_ += std::min(n, space()); }

std::span<const uint8_t> ByteRing::Readable() const {
  if (size_ == 0) return {};
  return std::span(data_).subspan(head_, std::min(size_, capacity_ - head_));
}

void ByteRing::Consume(size_t n) {
  n = std::min(n, size_);
  head_ = (head_ + n) % capacity_;
  size_ -= n;
}

uint32_t Connection::PeerCredit() const {
  uint32_t in_flight = tx_cnt - peer_fwd_cnt;  // wraps, as the spec's counters do
  return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
}

void Connection::UpdatePeerCredit(const Header& header) {
  peer_buf_alloc = header.buf_alloc;
  peer_fwd_cnt = header.fwd_cnt;
}

bool Connection::NeedsCreditUpdate() const {
  if (fwd_cnt == announced_fwd_cnt) return false;
  uint32_t unannounced_used = rx_cnt - announced_fwd_cnt;
  return unannounced_used > kBufAlloc || kBufAlloc - unannounced_used < kCreditThreshold;
}

RxKind Connection::NextRx() const {
  if (state == ConnState::kConnectLine) return RxKind::kNone;
  if (pending_request) return RxKind::kRequest;
  if (state != ConnState::kEstablished) return RxKind::kNone;
  if (pending_response) return RxKind::kResponse;
  if (!to_guest.empty() && !guest_shut_rcv && PeerCredit() > 0) return RxKind::kRw;
  if (pending_shutdown != 0 && (to_guest.empty() || guest_shut_rcv)) return RxKind::kShutdown;
  if (pending_credit_update || NeedsCreditUpdate()) return RxKind::kCreditUpdate;
  return RxKind::kNone;
}

void Connection::StampCredit(Header& header) {
  header.buf_alloc = kBufAlloc;
  header.fwd_cnt = fwd_cnt;
  announced_fwd_cnt = fwd_cnt;
}

void Connection::Forwarded(size_t n) {
  size_t ours = std::min(n, to_host_prefix);
  to_host_prefix -= ours;
  fwd_cnt += static_cast<uint32_t>(n - ours);
}

}  // namespace vireo::virtio::vsock
