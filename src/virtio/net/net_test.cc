// virtio-net: features, configuration space, notifications and lifecycle.
#include "virtio/net/net.h"

#include <gtest/gtest.h>

#include "virtio/net/net_test_fixture.h"

namespace vireo::virtio::testing {
namespace {

NetConfig ReadNetConfig(Net& net) {
  NetConfig config{};
  EXPECT_TRUE(net.ReadConfig(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)}));
  return config;
}

TEST_F(NetTest, OffersFeaturesAndConfig) {
  Create({.mtu = 1400});
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(net_->device_type(), 1u);
  EXPECT_EQ(net_->num_queues(), 2);
  EXPECT_EQ(net_->tap_name(), "vtap0");
  const uint64_t features = net_->device_features();
  for (uint64_t bit :
       {kNetFMac, kNetFStatus, kNetFMrgRxbuf, kNetFMtu, kNetFCsum, kNetFGuestCsum, kNetFHostTso4,
        kNetFHostTso6, kNetFHostEcn, kNetFGuestTso4, kNetFGuestTso6, kNetFGuestEcn}) {
    EXPECT_TRUE(features & bit) << std::hex << bit;
  }
  EXPECT_FALSE(features & kNetFCtrlVq);
  EXPECT_EQ(features & ~kDeviceFeatureMask, 0u);
  const NetConfig config = ReadNetConfig(*net_);
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), config.mac));
  EXPECT_EQ(config.status, kNetSLinkUp);
  EXPECT_EQ(config.max_virtqueue_pairs, 1);
  EXPECT_EQ(config.mtu, 1400);
  uint8_t byte = 0xaa;
  EXPECT_FALSE(net_->ReadConfig(sizeof(NetConfig), {&byte, 1}));  // past the end
  EXPECT_FALSE(net_->WriteConfig(0, std::span<const uint8_t>(&byte, 1)));
}

TEST_F(NetTest, OptionsTurnFeaturesOff) {
  Create({.offloads = false, .mergeable_rx = false});
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(net_->device_features(), kNetFMac | kNetFStatus);
}

TEST_F(NetTest, RandomMacWhenNoneGiven) {
  auto net = Net::Create({.tap_name = "vtap1"}, *loop_);
  ASSERT_TRUE(net) << net.error().message;
  const NetConfig config = ReadNetConfig(**net);
  EXPECT_EQ(config.mac[0] & 3, 2);  // unicast, locally administered
  EXPECT_TRUE(std::equal((*net)->mac().begin(), (*net)->mac().end(), config.mac));
}

TEST_F(NetTest, LinkStatusChangeSignalsConfigChange) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  net_->SetLinkUp(true);  // unchanged: no notification
  EXPECT_EQ(interrupt_.config_changes, 0);
  net_->SetLinkUp(false);
  EXPECT_EQ(ReadNetConfig(*net_).status, 0);
  EXPECT_EQ(interrupt_.config_changes, 1);
  net_->SetLinkUp(true);
  EXPECT_EQ(ReadNetConfig(*net_).status, kNetSLinkUp);
  EXPECT_EQ(interrupt_.config_changes, 2);
}

TEST_F(NetTest, MirrorsNegotiatedOffloadsToTheTap) {
  Start(kNetFGuestTso6 | kNetFGuestEcn | kNetFGuestUfo);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(net_->tap_offloads(), unsigned{TUN_F_CSUM | TUN_F_TSO4});
  net_->Reset();
  EXPECT_EQ(net_->tap_offloads(), 0u);
  Activate(kFVersion1 | kNetFMac);  // no GUEST_CSUM: no offloads at all
  EXPECT_EQ(net_->tap_offloads(), 0u);
}

TEST_F(NetTest, NotifyFdIsTheQueuesDoorbell) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(net_->notify_fd(2), -1);
  net_->QueueNotify(7);
  EXPECT_EQ(net_->counters().dropped_notifications, 1u);
  // As KVM's ioeventfd would: write the eventfd, never call QueueNotify.
  const auto frame = MakeFrame(100, 1);
  std::vector<uint8_t> bytes(sizeof(VirtioNetHdr));
  bytes.insert(bytes.end(), frame.begin(), frame.end());
  ASSERT_TRUE(memory_.Write(kTxData, bytes));
  const std::vector<TestBuffer> chain = {{kTxData, static_cast<uint32_t>(bytes.size()), false}};
  tx_->AddChain(chain);
  const uint64_t one = 1;
  ASSERT_EQ(::write(net_->notify_fd(Net::kTxQueue), &one, sizeof(one)), 8);
  auto sent = wire_->Receive(kTestEtherType, 3s);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, frame);
}

TEST_F(NetTest, BrokenAvailRingAsksForReset) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  tx_->SetAvailIdx(Net::kQueueSize + 10);  // more chains than the ring holds
  net_->QueueNotify(Net::kTxQueue);
  EXPECT_TRUE(Eventually([&] { return net_->needs_reset(); }));
  EXPECT_EQ(interrupt_.config_changes, 1);
  // A reset and a fresh activation bring the device back.
  net_->Reset();
  EXPECT_FALSE(net_->needs_reset());
  queues_[0].Reset();
  queues_[1].Reset();
  Activate(net_->device_features() | kFVersion1);
  ASSERT_FALSE(HasFatalFailure());
  SendTx(MakeFrame(64, 2));
  ASSERT_TRUE(WaitUsed(*tx_));
  EXPECT_TRUE(wire_->Receive(kTestEtherType, 3s));
}

TEST_F(NetTest, NotificationsBeforeActivationAreHarmless) {
  Create();
  ASSERT_FALSE(HasFatalFailure());
  net_->QueueNotify(Net::kRxQueue);
  net_->QueueNotify(Net::kTxQueue);
  net_->Reset();  // inactive: nothing to undo
  EXPECT_EQ(net_->counters().tx_packets, 0u);
}

}  // namespace
}  // namespace vireo::virtio::testing
