// virtio-net transmit: guest chains to the tap, and hostile chains.
#include <gtest/gtest.h>

#include "virtio/net/net_test_fixture.h"

namespace vireo::virtio::testing {
namespace {

TEST_F(NetTest, TransmitReachesTheWire) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto frame = MakeFrame(1000, 3);
  const uint16_t head = SendTx(frame);
  auto used = WaitUsed(*tx_);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  auto sent = wire_->Receive(kTestEtherType, 3s);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, frame);
  const NetCounters counters = net_->counters();
  EXPECT_EQ(counters.tx_packets, 1u);
  EXPECT_EQ(counters.tx_bytes, 1000u);
  EXPECT_GE(interrupt_.used[Net::kTxQueue], 1);
}

TEST_F(NetTest, TransmitGathersSplitBuffers) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto frame = MakeFrame(3000, 4);  // the tap's MTU is 9000
  SendTx(frame, {}, 5);                   // the header itself is split too
  ASSERT_TRUE(WaitUsed(*tx_));
  auto sent = wire_->Receive(kTestEtherType, 3s);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, frame);
}

TEST_F(NetTest, TransmitAroundAWrappingRing) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  // The ring holds 256: 200 chains, then 200 more that wrap around it.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 200; ++i) {
      const TestBuffer buffer{kTxData + 0x100 * static_cast<uint64_t>(i), 12 + 60, false};
      ASSERT_TRUE(memory_.Write(buffer.addr + 12, MakeFrame(60, static_cast<uint8_t>(i))));
      tx_->AddChain(std::span(&buffer, 1));
    }
    net_->QueueNotify(Net::kTxQueue);
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(WaitUsed(*tx_)) << i;
  }
  EXPECT_EQ(net_->counters().tx_packets, 400u);
}

TEST_F(NetTest, HostileTxChainsCompleteWithZero) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<std::vector<TestBuffer>> hostile = {
      {{kTxData, 100, false}, {kTxData + 0x1000, 100, true}},  // a writable buffer
      {{kTxData, 8, false}},                                   // shorter than the header
      {{kTxData, 12 + 10, false}},                             // a runt frame
      {{kTxData, 70000, false}},                               // beyond the largest frame
  };
  for (const auto& chain : hostile) {
    const uint16_t head = SendChain(chain);
    auto used = WaitUsed(*tx_);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, 0u);
  }
  // A chain whose descriptor points outside guest memory: Queue::Pop's bad chain.
  tx_->WriteDescriptor(200, 0x7fff0000, 100, 0, 0);
  tx_->Publish(200);
  net_->QueueNotify(Net::kTxQueue);
  ASSERT_TRUE(WaitUsed(*tx_));
  EXPECT_EQ(net_->counters().tx_bad_chains, 5u);
  // The device carries on.
  const auto frame = MakeFrame(64, 5);
  SendTx(frame);
  ASSERT_TRUE(WaitUsed(*tx_));
  auto sent = wire_->Receive(kTestEtherType, 3s);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, frame);
  EXPECT_EQ(net_->counters().tx_packets, 1u);
}

TEST_F(NetTest, HeaderTheKernelRefusesIsDropped) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  VirtioNetHdr hdr{};
  hdr.gso_type = 0x7f;  // no such GSO type
  hdr.gso_size = 100;
  SendTx(MakeFrame(200, 6), hdr);
  auto used = WaitUsed(*tx_);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 0u);
  const NetCounters counters = net_->counters();
  EXPECT_EQ(counters.tx_dropped, 1u);
  EXPECT_EQ(counters.tx_packets, 0u);
}

}  // namespace
}  // namespace vireo::virtio::testing
