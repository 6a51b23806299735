// virtio-net receive: frames from the tap into guest buffers, with and without
// MRG_RXBUF, waiting for buffers, and hostile rx chains; and ARP/ICMP with the kernel.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "virtio/net/net_test_fixture.h"

namespace vireo::virtio::testing {
namespace {

std::vector<uint8_t> Sub(const std::vector<uint8_t>& v, size_t begin, size_t len) {
  return {v.begin() + static_cast<ptrdiff_t>(begin),
          v.begin() + static_cast<ptrdiff_t>(begin + len)};
}

TEST_F(NetTest, MergeableFrameSpansSeveralBuffers) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  for (int i = 0; i < 4; ++i) PostRx({512});
  const auto frame = MakeFrame(1400, 7);
  ASSERT_TRUE(wire_->Send(frame));
  auto rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->hdr.num_buffers, 3);
  EXPECT_EQ(rx->used_lens, (std::vector<uint32_t>{512, 512, 1412 - 1024}));
  EXPECT_EQ(rx->frame, frame);
  // The fourth buffer is still held and takes the next frame whole.
  const auto small = MakeFrame(60, 8);
  ASSERT_TRUE(wire_->Send(small));
  rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->hdr.num_buffers, 1);
  EXPECT_EQ(rx->frame, small);
  const NetCounters counters = net_->counters();
  EXPECT_EQ(counters.rx_packets, 2u);
  EXPECT_EQ(counters.rx_bytes, 1460u);
  EXPECT_GE(interrupt_.used[Net::kRxQueue], 1);
}

TEST_F(NetTest, RxWaitsForBuffersThenDelivers) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto frame = MakeFrame(300, 9);
  ASSERT_TRUE(wire_->Send(frame));
  ASSERT_TRUE(Eventually([&] { return net_->counters().rx_waits >= 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(net_->counters().rx_packets, 0u);
  EXPECT_FALSE(rx_->NextUsed());
  PostRx({2048});
  auto rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->frame, frame);
  EXPECT_EQ(net_->counters().rx_dropped, 0u);
}

TEST_F(NetTest, FrameWaitsInTheBounceBufferForMoreBuffers) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  PostRx({512});
  PostRx({512});
  const auto frame = MakeFrame(1400, 10);  // needs 1412 bytes: more than the 1024 posted
  ASSERT_TRUE(wire_->Send(frame));
  ASSERT_TRUE(Eventually([&] { return net_->counters().rx_waits >= 1; }));
  EXPECT_FALSE(rx_->NextUsed());
  PostRx({256});
  PostRx({512});
  auto rx = ReceiveFrame();  // the tail came from the bounce buffer
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->hdr.num_buffers, 4);
  EXPECT_EQ(rx->used_lens, (std::vector<uint32_t>{512, 512, 256, 1412 - 1280}));
  EXPECT_EQ(rx->frame, frame);
  EXPECT_EQ(net_->counters().rx_dropped, 0u);
}

TEST_F(NetTest, NonMergeableUsesOneChainPerFrame) {
  Start(kNetFMrgRxbuf);
  ASSERT_FALSE(HasFatalFailure());
  const uint16_t head = PostRx({10, 1000, 1000});  // the header split over two buffers
  const auto frame = MakeFrame(1500, 11);
  ASSERT_TRUE(wire_->Send(frame));
  auto used = WaitUsed(*rx_);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 1512u);
  const auto bytes = ChainBytes(head, used->len);
  EXPECT_EQ(bytes[10] | bytes[11] << 8, 1);  // num_buffers
  EXPECT_EQ(Sub(bytes, 12, 1500), frame);
}

TEST_F(NetTest, NonMergeableFrameLargerThanTheChainIsDropped) {
  Start(kNetFMrgRxbuf);
  ASSERT_FALSE(HasFatalFailure());
  PostRx({100});
  ASSERT_TRUE(wire_->Send(MakeFrame(1000, 12)));
  ASSERT_TRUE(Eventually([&] { return net_->counters().rx_dropped == 1; }));
  EXPECT_FALSE(rx_->NextUsed());
  const auto frame = MakeFrame(80, 13);  // the same chain takes a frame that fits
  ASSERT_TRUE(wire_->Send(frame));
  auto rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->frame, frame);
}

TEST_F(NetTest, HostileRxChainsCompleteWithZero) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<TestBuffer> read_only = {{kRxData + 0x10000, 2048, false}};
  const uint16_t bad1 = rx_->AddChain(read_only);
  const uint16_t bad2 = PostRx({8}, false);  // smaller than the header
  const uint16_t good = PostRx({2048});
  const auto frame = MakeFrame(200, 14);
  ASSERT_TRUE(wire_->Send(frame));
  for (uint16_t bad : {bad1, bad2}) {
    auto used = WaitUsed(*rx_);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, bad);
    EXPECT_EQ(used->len, 0u);
  }
  auto used = WaitUsed(*rx_);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, good);
  EXPECT_EQ(Sub(ChainBytes(good, used->len), 12, 200), frame);
  EXPECT_EQ(net_->counters().rx_bad_chains, 2u);
}

uint16_t InternetChecksum(std::span<const uint8_t> bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) sum += bytes[i] << 8 | bytes[i + 1];
  if (bytes.size() & 1) sum += bytes.back() << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void Put16(std::vector<uint8_t>& v, size_t offset, uint16_t value) {
  v[offset] = static_cast<uint8_t>(value >> 8);
  v[offset + 1] = static_cast<uint8_t>(value);
}

TEST_F(NetTest, ArpAndPingWithTheHostKernel) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  for (int i = 0; i < 16; ++i) PostRx({2048});
  const uint8_t guest_ip[4] = {10, 11, 12, 2};
  const uint8_t host_ip[4] = {10, 11, 12, 1};

  // ARP who-has 10.11.12.1 tell 10.11.12.2 (RFC 826).
  std::vector<uint8_t> arp(42, 0);
  std::fill_n(arp.begin(), 6, 0xff);
  std::copy(kGuestMac.begin(), kGuestMac.end(), arp.begin() + 6);
  Put16(arp, 12, ETHERTYPE_ARP);
  Put16(arp, 14, 1);       // Ethernet
  Put16(arp, 16, 0x0800);  // IPv4
  arp[18] = 6;
  arp[19] = 4;
  Put16(arp, 20, 1);  // request
  std::copy(kGuestMac.begin(), kGuestMac.end(), arp.begin() + 22);
  std::copy(guest_ip, guest_ip + 4, arp.begin() + 28);
  std::copy(host_ip, host_ip + 4, arp.begin() + 38);
  SendTx(arp);
  auto reply = ReceiveType(ETHERTYPE_ARP);
  ASSERT_TRUE(reply);
  const auto& r = reply->frame;
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), r.begin()));  // to us
  EXPECT_EQ(LoadBe16(r, 20), 2);                                           // reply
  EXPECT_TRUE(std::equal(host_ip, host_ip + 4, r.begin() + 28));
  const std::vector<uint8_t> host_mac(r.begin() + 22, r.begin() + 28);

  // ICMP echo request to 10.11.12.1 (RFC 792) with 1000 bytes of data.
  const size_t ip_len = 20 + 8 + 1000;
  std::vector<uint8_t> ping(14 + ip_len, 0);
  std::copy(host_mac.begin(), host_mac.end(), ping.begin());
  std::copy(kGuestMac.begin(), kGuestMac.end(), ping.begin() + 6);
  Put16(ping, 12, ETHERTYPE_IP);
  ping[14] = 0x45;
  Put16(ping, 16, static_cast<uint16_t>(ip_len));
  ping[22] = 64;  // TTL
  ping[23] = 1;   // ICMP
  std::copy(guest_ip, guest_ip + 4, ping.begin() + 26);
  std::copy(host_ip, host_ip + 4, ping.begin() + 30);
  Put16(ping, 24, InternetChecksum(std::span(ping).subspan(14, 20)));
  ping[34] = 8;  // echo request
  Put16(ping, 38, 0x1234);
  Put16(ping, 40, 1);
  for (size_t i = 0; i < 1000; ++i) ping[42 + i] = static_cast<uint8_t>(i);
  Put16(ping, 36, InternetChecksum(std::span(ping).subspan(34)));
  SendTx(ping);
  auto echo = ReceiveType(ETHERTYPE_IP);
  ASSERT_TRUE(echo);
  const auto& e = echo->frame;
  ASSERT_EQ(e.size(), ping.size());
  EXPECT_EQ(e[23], 1);
  EXPECT_EQ(e[34], 0);  // echo reply
  EXPECT_EQ(LoadBe16(e, 38), 0x1234);
  EXPECT_EQ(Sub(e, 42, 1000), Sub(ping, 42, 1000));
  EXPECT_EQ(net_->counters().tx_packets, 2u);
}

}  // namespace
}  // namespace vireo::virtio::testing
