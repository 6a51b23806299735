// The vsock device against a test guest driver and real host Unix sockets.
#include "virtio/vsock/vsock.h"

#include <gtest/gtest.h>

#include "virtio/vsock/vsock_test_fixture.h"

namespace vireo::virtio::vsock::testing {
namespace {

TEST_F(VsockTest, DeviceIdentityAndConfig) {
  EXPECT_EQ(device_->device_type(), 19u);
  EXPECT_EQ(device_->num_queues(), 3u);
  uint64_t cid = 0;
  EXPECT_TRUE(device_->ReadConfig(0, {reinterpret_cast<uint8_t*>(&cid), 8}));
  EXPECT_EQ(cid, kCid);
  uint8_t byte = 0;
  EXPECT_FALSE(device_->ReadConfig(8, {&byte, 1}));
  EXPECT_FALSE(device_->WriteConfig(0, {&byte, 1}));
  EXPECT_GE(device_->notify_fd(2), 0);
  EXPECT_EQ(device_->notify_fd(3), -1);
}

TEST_F(VsockTest, HostConnectsAndDataFlowsBothWays) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(1234, host_port, "early");
  ASSERT_TRUE(host.valid());
  EXPECT_GE(host_port, 1u << 30);
  // Bytes sent right after the CONNECT line waited in the socket for the guest's answer.
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRw);
  EXPECT_EQ(packet->text(), "early");
  EXPECT_EQ(packet->header.src_cid, kHostCid);
  EXPECT_EQ(packet->header.dst_cid, kCid);
  EXPECT_EQ(packet->header.buf_alloc, Connection::kBufAlloc);

  HostWrite(host.get(), "hello");
  packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRw);
  EXPECT_EQ(packet->header.src_port, host_port);
  EXPECT_EQ(packet->header.dst_port, 1234u);
  EXPECT_EQ(packet->text(), "hello");

  Send(GuestHeader(1234, host_port, Op::kRw, 0));  // empty: harmless
  Send(GuestHeader(1234, host_port, Op::kRw, 5), "world");
  EXPECT_EQ(HostRead(host.get(), 5), "world");
  EXPECT_EQ(device_->connection_count(), 1u);
  EXPECT_GT(interrupt_.used[Vsock::kRxQueue].load(), 0);
  EXPECT_GT(interrupt_.used[Vsock::kTxQueue].load(), 0);
}

TEST_F(VsockTest, DeviceStopsAtTheGuestsCreditAndResumesOnCreditUpdate) {
  uint32_t host_port = 0;
  UniqueFd host = HostConnect(path_);
  HostWrite(host.get(), "CONNECT 80\n");
  auto request = Receive();
  ASSERT_TRUE(request);
  host_port = request->header.src_port;
  Header response = GuestHeader(80, host_port, Op::kResponse);
  response.buf_alloc = 8192;
  Send(response);
  ASSERT_EQ(HostReadLine(host.get()), "OK " + std::to_string(host_port) + "\n");

  std::string sent;
  for (int i = 0; i < 20000; ++i) sent.push_back(static_cast<char>('a' + i % 26));
  HostWrite(host.get(), sent);
  std::string got;
  auto drain = [&] {
    while (auto packet = Receive(300)) {
      EXPECT_EQ(packet->op(), Op::kRw);
      got += packet->text();
    }
  };
  drain();
  EXPECT_EQ(got.size(), 8192u);  // exactly the advertised buffer, no more
  Header credit = GuestHeader(80, host_port, Op::kCreditUpdate);
  credit.buf_alloc = 8192;
  credit.fwd_cnt = 8192;
  Send(credit);
  drain();
  EXPECT_EQ(got.size(), 16384u);
  credit.fwd_cnt = 16384;
  Send(credit);
  drain();
  EXPECT_EQ(got, sent);
}

TEST_F(VsockTest, DeviceAnnouncesCreditAsTheHostReads) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(81, host_port);
  ASSERT_TRUE(host.valid());
  const std::string chunk(60000, 'x');
  for (int i = 0; i < 4; ++i) Send(GuestHeader(81, host_port, Op::kRw, 60000), chunk);
  EXPECT_EQ(HostRead(host.get(), 240000).size(), 240000u);
  // The guest's view of our free space fell to 256 KiB - 240000: the device tells it more
  // as the host reads, until that view is back above the threshold.
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kCreditUpdate);
  EXPECT_EQ(packet->header.buf_alloc, Connection::kBufAlloc);
  EXPECT_GE(Connection::kBufAlloc - (240000u - packet->header.fwd_cnt),
            Connection::kCreditThreshold);
  while (auto more = Receive(200)) EXPECT_EQ(more->op(), Op::kCreditUpdate);
  // A credit request is answered with everything forwarded so far.
  Send(GuestHeader(81, host_port, Op::kCreditRequest));
  packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kCreditUpdate);
  EXPECT_EQ(packet->header.fwd_cnt, 240000u);
}

TEST_F(VsockTest, GuestOverrunningOurCreditIsReset) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(82, host_port);  // the host never reads
  const std::string chunk(60000, 'y');
  std::optional<Packet> packet;
  for (int i = 0; i < 40 && device_->connection_count() == 1; ++i) {
    Send(GuestHeader(82, host_port, Op::kRw, 60000), chunk);
  }
  EXPECT_EQ(device_->connection_count(), 0u);
  EXPECT_EQ(device_->counters().credit_overruns, 1u);
  // Credit updates may come first; the last packet is the RST.
  while (auto p = Receive(300)) packet = p;
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRst);
}

TEST_F(VsockTest, GuestConnectsToAHostListener) {
  auto listener = ListenUnix(PortSocketPath(path_, 5000));
  ASSERT_TRUE(listener);
  Send(GuestHeader(40000, 5000, Op::kRequest));
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kResponse);
  EXPECT_EQ(packet->header.src_port, 5000u);
  EXPECT_EQ(packet->header.dst_port, 40000u);
  UniqueFd host = AcceptWithin(listener->get());
  ASSERT_TRUE(host.valid());
  Send(GuestHeader(40000, 5000, Op::kRw, 4), "ping");
  EXPECT_EQ(HostRead(host.get(), 4), "ping");
  HostWrite(host.get(), "pong");
  packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRw);
  EXPECT_EQ(packet->text(), "pong");

  // The guest closes: the host sees EOF and the guest gets the RST that ends the close.
  Header shutdown = GuestHeader(40000, 5000, Op::kShutdown);
  shutdown.flags = kShutdownBoth;
  Send(shutdown);
  EXPECT_TRUE(HostSeesEof(host.get()));
  packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRst);
  EXPECT_EQ(device_->connection_count(), 0u);
}

TEST_F(VsockTest, GuestConnectToAPortNobodyListensOnGetsRst) {
  Send(GuestHeader(40001, 5001, Op::kRequest));
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRst);
  EXPECT_EQ(packet->header.src_port, 5001u);
  EXPECT_EQ(packet->header.dst_port, 40001u);
  EXPECT_EQ(device_->counters().host_connect_failed, 1u);
  EXPECT_EQ(device_->connection_count(), 0u);
}

TEST_F(VsockTest, HostCloseSendsShutdownAndGuestRstEndsIt) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(90, host_port);
  HostWrite(host.get(), "bye");
  host.reset();
  std::string data;
  std::optional<Packet> packet;
  while ((packet = Receive()) && packet->op() == Op::kRw) data += packet->text();
  EXPECT_EQ(data, "bye");
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kShutdown);
  EXPECT_NE(packet->header.flags & kShutdownSend, 0u);
  Send(GuestHeader(90, host_port, Op::kRst));
  EXPECT_EQ(device_->connection_count(), 0u);
  EXPECT_FALSE(Receive(200));  // an RST is never answered
}

TEST_F(VsockTest, GuestHalfCloseShutsTheHostsReadSide) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(91, host_port);
  Send(GuestHeader(91, host_port, Op::kRw, 3), "abc");
  Header shutdown = GuestHeader(91, host_port, Op::kShutdown);
  shutdown.flags = kShutdownSend;
  Send(shutdown);
  EXPECT_EQ(HostRead(host.get(), 3), "abc");
  EXPECT_TRUE(HostSeesEof(host.get()));
  HostWrite(host.get(), "still");  // the other direction still works
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->text(), "still");
}

TEST_F(VsockTest, MalformedOrLongConnectLinesAreClosed) {
  for (const char* line : {"CONNEC 12\n", "CONNECT x\n", "CONNECT 99999999999\n",
                           "CONNECT 111111111111111111111111111111111111111111\n"}) {
    UniqueFd host = HostConnect(path_);
    ASSERT_TRUE(host.valid());
    HostWrite(host.get(), line);
    EXPECT_TRUE(HostSeesEof(host.get())) << line;
  }
  EXPECT_EQ(device_->counters().bad_connect_lines, 4u);
  EXPECT_EQ(device_->connection_count(), 0u);
  EXPECT_FALSE(Receive(100));  // the guest heard of none of them
}

TEST_F(VsockTest, ResetClosesEveryConnection) {
  uint32_t port_a = 0, port_b = 0;
  UniqueFd a = EstablishFromHost(100, port_a);
  UniqueFd b = EstablishFromHost(101, port_b);
  UniqueFd pending = HostConnect(path_);  // still in the CONNECT phase
  ASSERT_TRUE(WaitUntil([&] { return device_->connection_count() == 3; }));
  device_->Reset();
  EXPECT_EQ(device_->connection_count(), 0u);
  EXPECT_TRUE(HostSeesEof(a.get()));
  EXPECT_TRUE(HostSeesEof(b.get()));
  EXPECT_TRUE(HostSeesEof(pending.get()));
  device_->QueueNotify(Vsock::kTxQueue);  // inactive: ignored
}

TEST_F(VsockTest, HostConnectionsWaitForActivation) {
  device_->Reset();
  UniqueFd host = HostConnect(path_);
  HostWrite(host.get(), "CONNECT 7\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(device_->connection_count(), 0u);
  ActivateDevice();
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->op(), Op::kRequest);
  EXPECT_EQ(packet->header.dst_port, 7u);
}

}  // namespace
}  // namespace vireo::virtio::vsock::testing
