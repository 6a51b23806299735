// One vsock stream connection's state (virtio 1.2, 5.10.6.3 "Stream Sockets" and
// 5.10.6.3.1 "Buffer Space Management"), and the bounded byte ring that buffers its data.
//
// Credit: we may send the guest at most peer_buf_alloc - (tx_cnt - peer_fwd_cnt) bytes;
// the guest may send us at most kBufAlloc - (rx_cnt - fwd_cnt). Counters are u32 and wrap,
// as in the spec. Plain data plus the host fd; the device owns the event-loop wiring.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/unique_fd.h"
#include "virtio/vsock/packet.h"

namespace vireo::virtio::vsock {

// A fixed-capacity FIFO of bytes. Storage is allocated on first use, so an idle connection
// costs nothing; it never grows past `capacity`.
class ByteRing {
 public:
  explicit ByteRing(size_t capacity) : capacity_(capacity) {}

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  size_t space() const { return capacity_ - size_; }
  bool empty() const { return size_ == 0; }

  // Copies as much of `data` as fits; returns how much.
  size_t Push(std::span<const uint8_t> data);
  // The contiguous run of free space after the tail; Commit(n) after filling n of it.
  std::span<uint8_t> Writable();
  void Commit(size_t n);
  // The contiguous run of bytes at the head; Consume(n) drops n of them.
  std::span<const uint8_t> Readable() const;
  void Consume(size_t n);
  void Clear() { head_ = size_ = 0; }

 private:
  void Allocate();
  size_t capacity_;
  std::vector<uint8_t> data_;
  size_t head_ = 0;
  size_t size_ = 0;
};

enum class ConnState {
  kConnectLine,  // host-initiated: reading "CONNECT <port>\n"; the guest knows nothing yet
  kConnecting,   // host-initiated: REQUEST queued or sent, waiting for the guest's RESPONSE
  kEstablished,
};

// What the device should send the guest next for a connection.
enum class RxKind { kNone, kRequest, kResponse, kRw, kShutdown, kCreditUpdate };

struct Connection {
  // Our advertised receive buffer (guest to host), and the host-to-guest buffer.
  static constexpr uint32_t kBufAlloc = 256 * 1024;
  static constexpr size_t kToGuestBytes = 64 * 1024;
  // Room for "OK <port>\n" ahead of guest data in the to-host ring.
  static constexpr size_t kOkLineMax = 16;
  // Announce forwarded bytes once the guest's view of our free space drops below this.
  static constexpr uint32_t kCreditThreshold = 64 * 1024;
  static constexpr size_t kMaxConnectLine = 32;

  Connection(uint64_t id, UniqueFd fd) : id(id), fd(std::move(fd)) {}

  uint64_t id;
  ConnState state = ConnState::kConnectLine;
  uint32_t local_port = 0;  // the host side's port
  uint32_t peer_port = 0;   // the guest side's port
  UniqueFd fd;
  uint32_t watched = 0;  // events registered with the loop; 0: not registered

  // Guest to host. rx_cnt: payload bytes received; fwd_cnt: of those, written to the host.
  uint32_t rx_cnt = 0;
  uint32_t fwd_cnt = 0;
  uint32_t announced_fwd_cnt = 0;  // fwd_cnt in the last packet we sent
  ByteRing to_host{kBufAlloc + kOkLineMax};
  size_t to_host_prefix = 0;  // bytes at the head of to_host that are ours (the OK line)

  // Host to guest.
  uint32_t tx_cnt = 0;
  uint32_t peer_buf_alloc = 0;
  uint32_t peer_fwd_cnt = 0;
  ByteRing to_guest{kToGuestBytes};

  std::array<char, kMaxConnectLine> line{};
  size_t line_len = 0;

  bool pending_request = false;
  bool pending_response = false;
  bool pending_credit_update = false;
  uint32_t pending_shutdown = 0;  // flags to send once to_guest is drained
  bool host_eof = false;          // the host shut its write side
  bool guest_shut_send = false;   // the guest will send no more data
  bool guest_shut_rcv = false;    // the guest wants no more data
  bool closing = false;           // the guest closed: flush to_host, then RST
  bool host_write_shut = false;   // we shut the host socket's write side
  bool in_ready = false;          // on the device's ready list
  bool removed = false;           // closed; the object waits in the device's graveyard

  // 5.10.6.3.1: what the guest can still take.
  uint32_t PeerCredit() const;
  // Records the credit fields of a packet from the guest.
  void UpdatePeerCredit(const Header& header);
  // Whether the guest's view of our free space is low and we have forwarded more since.
  bool NeedsCreditUpdate() const;
  // The next packet to send, if any (does not change state).
  RxKind NextRx() const;
  // Fills in our credit fields and records the announcement.
  void StampCredit(Header& header);
  // Bytes were written to the host from the head of to_host: updates fwd_cnt.
  void Forwarded(size_t n);
};

}  // namespace vireo::virtio::vsock
