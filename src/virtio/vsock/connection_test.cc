#include "virtio/vsock/connection.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace vireo::virtio::vsock {
namespace {

std::vector<uint8_t> Drain(ByteRing& ring) {
  std::vector<uint8_t> out;
  for (int run = 0; run < 2; ++run) {
    auto bytes = ring.Readable();
    out.insert(out.end(), bytes.begin(), bytes.end());
    ring.Consume(bytes.size());
  }
  return out;
}

TEST(VsockByteRing, WrapsAndNeverExceedsCapacity) {
  ByteRing ring(8);
  std::vector<uint8_t> data(12);
  std::iota(data.begin(), data.end(), 0);
  EXPECT_EQ(ring.Push(data), 8u);
  EXPECT_EQ(ring.space(), 0u);
  EXPECT_TRUE(ring.Writable().empty());
  ring.Consume(5);
  EXPECT_EQ(ring.Push(std::span(data).subspan(8)), 4u);  // wraps
  EXPECT_EQ(ring.size(), 7u);
  EXPECT_EQ(Drain(ring), (std::vector<uint8_t>{5, 6, 7, 8, 9, 10, 11}));
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.Writable().size(), 8u);  // empty: contiguous again
}

TEST(VsockConnection, PeerCreditFollowsTheSpec) {
  Connection conn(1, UniqueFd());
  EXPECT_EQ(conn.PeerCredit(), 0u);  // nothing advertised yet
  Header h{};
  h.buf_alloc = 1000;
  h.fwd_cnt = 0;
  conn.UpdatePeerCredit(h);
  EXPECT_EQ(conn.PeerCredit(), 1000u);
  conn.tx_cnt = 600;
  EXPECT_EQ(conn.PeerCredit(), 400u);
  conn.tx_cnt = 1000;
  EXPECT_EQ(conn.PeerCredit(), 0u);
  h.fwd_cnt = 1000;
  conn.UpdatePeerCredit(h);
  EXPECT_EQ(conn.PeerCredit(), 1000u);
  // Counters wrap (5.10.6.3.1 uses free-running u32 counters).
  conn.tx_cnt = 5;
  h.fwd_cnt = 0xfffffffbu;  // 10 bytes in flight across the wrap
  conn.UpdatePeerCredit(h);
  EXPECT_EQ(conn.PeerCredit(), 990u);
  // A lying guest (fwd_cnt ahead of what we sent) gets no more than buf_alloc... or zero.
  h.fwd_cnt = 100;
  conn.UpdatePeerCredit(h);
  EXPECT_EQ(conn.PeerCredit(), 0u);
}

TEST(VsockConnection, CreditUpdateWhenTheGuestsViewRunsLow) {
  Connection conn(1, UniqueFd());
  conn.state = ConnState::kEstablished;
  conn.rx_cnt = 1000;
  conn.fwd_cnt = 1000;
  EXPECT_FALSE(conn.NeedsCreditUpdate());  // plenty of room in the guest's view
  conn.rx_cnt = Connection::kBufAlloc;
  EXPECT_TRUE(conn.NeedsCreditUpdate());
  EXPECT_EQ(conn.NextRx(), RxKind::kCreditUpdate);
  Header h{};
  conn.StampCredit(h);
  EXPECT_EQ(h.buf_alloc, Connection::kBufAlloc);
  EXPECT_EQ(h.fwd_cnt, 1000u);
  EXPECT_FALSE(conn.NeedsCreditUpdate());
}

TEST(VsockConnection, ForwardedSkipsTheOkLine) {
  Connection conn(1, UniqueFd());
  conn.to_host_prefix = 5;
  conn.Forwarded(3);
  EXPECT_EQ(conn.fwd_cnt, 0u);
  conn.Forwarded(10);
  EXPECT_EQ(conn.fwd_cnt, 8u);
  EXPECT_EQ(conn.to_host_prefix, 0u);
}

TEST(VsockConnection, NextRxOrder) {
  Connection conn(1, UniqueFd());
  EXPECT_EQ(conn.NextRx(), RxKind::kNone);  // still reading the CONNECT line
  conn.state = ConnState::kConnecting;
  conn.pending_request = true;
  EXPECT_EQ(conn.NextRx(), RxKind::kRequest);
  conn.pending_request = false;
  EXPECT_EQ(conn.NextRx(), RxKind::kNone);
  conn.state = ConnState::kEstablished;
  const uint8_t byte = 1;
  conn.to_guest.Push({&byte, 1});
  conn.pending_shutdown = kShutdownSend;
  EXPECT_EQ(conn.NextRx(), RxKind::kNone);  // data waits for credit; shutdown waits for data
  conn.peer_buf_alloc = 10;
  EXPECT_EQ(conn.NextRx(), RxKind::kRw);
  conn.to_guest.Clear();
  EXPECT_EQ(conn.NextRx(), RxKind::kShutdown);
}

}  // namespace
}  // namespace vireo::virtio::vsock
