// The vsock device against a hostile guest: malformed packets and connection floods.
#include <gtest/gtest.h>

#include "virtio/vsock/vsock.h"
#include "virtio/vsock/vsock_test_fixture.h"

namespace vireo::virtio::vsock::testing {
namespace {

TEST_F(VsockTest, MalformedPacketsAreCountedAndAnsweredWithinBounds) {
  // Short header: 20 readable bytes. Dropped.
  const TestBuffer short_buffer{kTxBase, 20, false};
  tx_->AddChain({&short_buffer, 1});
  KickTxAndWait();
  // A write-only chain has no header either.
  const TestBuffer write_only{kTxBase, 64, true};
  tx_->AddChain({&write_only, 1});
  KickTxAndWait();
  // Wrong CIDs: dropped silently.
  Header h = GuestHeader(1, 2, Op::kRequest);
  h.dst_cid = 7;
  Send(h);
  h = GuestHeader(1, 2, Op::kRequest);
  h.src_cid = kCid + 1;
  Send(h);
  EXPECT_EQ(device_->counters().short_headers, 2u);
  EXPECT_EQ(device_->counters().wrong_cid, 2u);
  EXPECT_FALSE(Receive(100));

  // len beyond the chain, len beyond the maximum, bad type, unknown op: RST each.
  Send(GuestHeader(11, 21, Op::kRw, 1000), "0123456789");
  h = GuestHeader(12, 22, Op::kRw, kMaxPayload + 1);
  const TestBuffer big[] = {{kTxBase, sizeof(Header), false},
                            {kTxBase + kTxSlotSize, kTxSlotSize, false},
                            {kTxBase + 2 * kTxSlotSize, kTxSlotSize, false}};
  memory_.WriteObj(kTxBase, h);
  tx_->AddChain(big);
  KickTxAndWait();
  h = GuestHeader(13, 23, Op::kRequest);
  h.type = 2;
  Send(h);
  h = GuestHeader(14, 24, Op::kRequest);
  h.op = 99;
  Send(h);
  // Packets for no connection: an RW gets RST, an RST gets nothing.
  Send(GuestHeader(15, 25, Op::kRw, 1), "z");
  Send(GuestHeader(16, 26, Op::kRst));
  for (uint32_t port : {11u, 12u, 13u, 14u, 15u}) {
    auto packet = Receive();
    ASSERT_TRUE(packet);
    EXPECT_EQ(packet->op(), Op::kRst);
    EXPECT_EQ(packet->header.dst_port, port);
    EXPECT_EQ(packet->header.src_port, port + 10);
  }
  EXPECT_FALSE(Receive(100));
  VsockCounters c = device_->counters();
  EXPECT_EQ(c.bad_length, 2u);
  EXPECT_EQ(c.bad_type, 1u);
  EXPECT_EQ(c.unknown_op, 1u);
  EXPECT_EQ(c.unexpected_op, 1u);
  EXPECT_EQ(device_->connection_count(), 0u);
  EXPECT_FALSE(device_->needs_reset());

  // The device still works.
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(1, host_port);
  EXPECT_TRUE(host.valid());
}

TEST_F(VsockTest, BadPacketOnALiveConnectionResetsIt) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(55, host_port);
  Send(GuestHeader(55, host_port, Op::kRw, 100), "short");  // len beyond the chain
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRst);
  EXPECT_TRUE(HostSeesEof(host.get()));
  EXPECT_EQ(device_->connection_count(), 0u);
  // A second RESPONSE or a REQUEST for a live connection is a protocol error too.
  host = EstablishFromHost(56, host_port);
  Send(GuestHeader(56, host_port, Op::kRequest));
  packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRst);
  EXPECT_TRUE(HostSeesEof(host.get()));
}

TEST_F(VsockTest, ConnectionFloodStaysWithinTheTable) {
  // A host listener with a deep backlog, so the device's own bound is what limits.
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = PortSocketPath(path_, 6000);
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener.get(), 4096), 0);
  int responses = 0, rsts = 0;
  for (uint32_t batch = 0; batch < 2000 / kTxSlots; ++batch) {
    for (uint32_t i = 0; i < kTxSlots; ++i) {
      QueueTx(GuestHeader(10000 + batch * kTxSlots + i, 6000, Op::kRequest));
    }
    KickTxAndWait();
    for (uint32_t i = 0; i < kTxSlots; ++i) {
      auto packet = Receive();
      ASSERT_TRUE(packet);
      (packet->op() == Op::kResponse ? responses : rsts)++;
    }
  }
  EXPECT_EQ(responses + rsts, 2000);
  EXPECT_LE(device_->connection_count(), 64u);  // max_connections in the fixture
  EXPECT_LE(responses, 64);
  EXPECT_GE(device_->counters().table_full, 2000u - 64u - 128u);
}

TEST_F(VsockTest, RstFloodWithoutRxBuffersIsBounded) {
  // 2000 requests to a port nobody listens on, and the guest takes no replies.
  for (uint32_t batch = 0; batch < 2000 / kTxSlots; ++batch) {
    for (uint32_t i = 0; i < kTxSlots; ++i) {
      QueueTx(GuestHeader(20000 + batch * kTxSlots + i, 7, Op::kRequest));
    }
    KickTxAndWait();
  }
  ASSERT_TRUE(WaitUntil([&] { return device_->counters().rst_sent == kRxBuffers; }));
  VsockCounters c = device_->counters();
  EXPECT_EQ(c.host_connect_failed, 2000u);
  EXPECT_EQ(c.rst_dropped, 2000u - kRxBuffers - Vsock::kMaxPendingRst);
  // As the guest takes replies, the queued RSTs drain.
  int received = 0;
  while (Receive(200)) received++;
  EXPECT_EQ(received, static_cast<int>(kRxBuffers + Vsock::kMaxPendingRst));
}

TEST_F(VsockTest, NotificationsForNoSuchQueueAreCounted) {
  device_->QueueNotify(3);
  device_->QueueNotify(Vsock::kEventQueue);
  EXPECT_EQ(device_->counters().dropped_notifications, 1u);
}

}  // namespace
}  // namespace vireo::virtio::vsock::testing
