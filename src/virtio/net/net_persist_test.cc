// virtio-net snapshot state: a device saved with rx chains held and a frame half received
// restores into a fresh device (on a fresh tap of the same name) that delivers that frame
// whole, at the right ring positions, announces the guest's MAC, and carries on; hostile
// states are refused.
#include <gtest/gtest.h>

#include "virtio/net/net_test_fixture.h"

namespace vireo::virtio::testing {
namespace {

constexpr uint16_t kEtherTypeRarp = 0x8035;

class NetPersistTest : public NetTest {
 protected:
  // Saves the device and the transport's queues, as a paused VM's snapshot does.
  NetSavedState Save() {
    rx_state_ = queues_[Net::kRxQueue].state();
    tx_state_ = queues_[Net::kTxQueue].state();
    return net_->SaveState(rx_state_, tx_state_);
  }

  // A fresh device on a fresh tap of the same name; the state and queues go in, then the
  // device is activated as the transport's restore does.
  void Restore(const NetSavedState& state, uint64_t features) {
    net_.reset();  // closes the tap: the kernel deletes it, Create makes it again
    wire_.reset();
    queues_.clear();
    queues_.emplace_back(Net::kQueueSize);
    queues_.emplace_back(Net::kQueueSize);
    Create();
    if (HasFatalFailure()) return;
    auto restored = net_->RestoreState(state);
    ASSERT_TRUE(restored) << restored.error().message;
    ASSERT_TRUE(queues_[Net::kRxQueue].Restore(memory_, rx_state_));
    ASSERT_TRUE(queues_[Net::kTxQueue].Restore(memory_, tx_state_));
    auto activated = net_->Activate({memory_, queues_, features, interrupt_});
    ASSERT_TRUE(activated) << activated.error().message;
  }

  QueueState rx_state_;
  QueueState tx_state_;
};

TEST_F(NetPersistTest, HalfReceivedFrameSurvivesARestoreWhole) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const uint64_t features = (net_->device_features()) | kFVersion1;
  PostRx({512});
  PostRx({512});
  const auto frame = MakeFrame(1400, 21);  // 1412 bytes: the ring runs dry mid-frame
  ASSERT_TRUE(wire_->Send(frame));
  ASSERT_TRUE(Eventually([&] { return net_->counters().rx_waits >= 1; }));
  EXPECT_FALSE(rx_->NextUsed());

  const NetSavedState state = Save();
  EXPECT_EQ(state.mac, kGuestMac);
  EXPECT_EQ(state.status, kNetSLinkUp);
  ASSERT_EQ(state.rx_pending.size(), sizeof(VirtioNetHdr) + frame.size());
  EXPECT_TRUE(
      std::equal(frame.begin(), frame.end(), state.rx_pending.begin() + sizeof(VirtioNetHdr)));
  // The two held chains go back to the driver's side: rx resumes at avail index 0.
  EXPECT_EQ(queues_[Net::kRxQueue].next_avail(), 2);
  EXPECT_EQ(rx_state_.next_avail, 0);
  EXPECT_EQ(rx_state_.next_used, 0);

  Restore(state, features);
  ASSERT_FALSE(HasFatalFailure());
  // The restored device announces the guest on the tap.
  auto rarp = wire_->Receive(kEtherTypeRarp, 3s);
  ASSERT_TRUE(rarp);
  ASSERT_GE(rarp->size(), 42u);
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), rarp->begin() + 6));
  EXPECT_EQ(LoadBe16(*rarp, 20), 3);  // RARP request
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), rarp->begin() + 22));
  EXPECT_EQ(net_->counters().announcements, 1u);

  // The held chains are popped again; one more buffer and the frame is delivered whole,
  // exactly once, in the chains the driver posted first.
  PostRx({512});
  auto rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->hdr.num_buffers, 3);
  EXPECT_EQ(rx->used_lens, (std::vector<uint32_t>{512, 512, 1412 - 1024}));
  EXPECT_EQ(rx->frame, frame);
  EXPECT_FALSE(rx_->NextUsed());
  // And the restored device goes on: the next frame, and a transmit.
  PostRx({2048});
  const auto next = MakeFrame(100, 22);
  ASSERT_TRUE(wire_->Send(next));
  rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->frame, next);
  const auto out = MakeFrame(80, 23);
  SendTx(out);
  auto sent = wire_->Receive(kTestEtherType, 3s);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, out);
  EXPECT_EQ(net_->counters().rx_dropped, 0u);
}

TEST_F(NetPersistTest, IdleDeviceRoundTripsWithoutRewinding) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto frame = MakeFrame(200, 31);
  PostRx({2048});
  ASSERT_TRUE(wire_->Send(frame));
  auto rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  // Nothing is held once the frame is done and the ring is empty.
  const NetSavedState state = Save();
  EXPECT_TRUE(state.rx_pending.empty());
  EXPECT_EQ(rx_state_.next_avail, 1);
  EXPECT_EQ(rx_state_.next_used, 1);
  Restore(state, net_->device_features() | kFVersion1);
  ASSERT_FALSE(HasFatalFailure());
  PostRx({2048});
  const auto next = MakeFrame(300, 32);
  ASSERT_TRUE(wire_->Send(next));
  rx = ReceiveFrame();
  ASSERT_TRUE(rx);
  EXPECT_EQ(rx->frame, next);
  EXPECT_EQ(queues_[Net::kRxQueue].next_used(), 2);
}

TEST_F(NetPersistTest, HostileStatesAreRefused) {
  Create();
  ASSERT_FALSE(HasFatalFailure());
  NetSavedState good;
  good.mac = kGuestMac;
  good.status = kNetSLinkUp;
  struct Case {
    const char* phrase;
    NetSavedState state;
  };
  std::vector<Case> cases;
  cases.push_back({"MAC", good});
  cases.back().state.mac[5] ^= 1;
  cases.push_back({"unknown bits", good});
  cases.back().state.status = 0x80;
  cases.push_back({"pending receive frame of 5 bytes", good});
  cases.back().state.rx_pending.resize(5);
  cases.push_back({"pending receive frame of", good});
  cases.back().state.rx_pending.resize(Net::kMaxPacketBytes + 1);
  for (const Case& c : cases) {
    auto restored = net_->RestoreState(c.state);
    ASSERT_FALSE(restored) << c.phrase;
    EXPECT_NE(restored.error().message.find(c.phrase), std::string::npos)
        << restored.error().message;
  }
  EXPECT_TRUE(net_->RestoreState(good));
}

}  // namespace
}  // namespace vireo::virtio::testing
