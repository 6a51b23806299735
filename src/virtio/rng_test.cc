#include "virtio/rng.h"

#include <gtest/gtest.h>

#include <vector>

#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using testing::RecordingInterrupt;
using testing::TestBuffer;
using testing::TestDriver;

constexpr GuestAddress kData = 0x40000;

class RngTest : public ::testing::Test {
 protected:
  RngTest() : memory_(testing::MakeTestMemory()), driver_(memory_, 16), queues_{Queue(256)} {
    driver_.Configure(queues_[0]);
    EXPECT_TRUE(queues_[0].Activate(memory_));
    EXPECT_TRUE(rng_.Activate(ActivateContext{memory_, queues_, kFVersion1, interrupt_}));
  }
  std::vector<uint8_t> ReadBack(GuestAddress addr, size_t len) {
    std::vector<uint8_t> bytes(len);
    EXPECT_TRUE(memory_.Read(addr, bytes));
    return bytes;
  }

  GuestMemory memory_;
  TestDriver driver_;
  std::vector<Queue> queues_;
  RecordingInterrupt interrupt_;
  Rng rng_;
};

TEST_F(RngTest, DescribesItself) {
  EXPECT_EQ(rng_.device_type(), 4u);
  EXPECT_EQ(rng_.num_queues(), 1);
  EXPECT_EQ(rng_.device_features(), 0u);
  std::vector<uint8_t> config(4, 0xff);
  EXPECT_FALSE(rng_.ReadConfig(0, config));  // 5.4.4: no config space
  EXPECT_EQ(config, std::vector<uint8_t>(4, 0));
}

TEST_F(RngTest, FillsWritableBuffers) {
  std::vector<uint8_t> zeros(0x2000);
  memory_.Write(kData, zeros);
  uint16_t head = driver_.AddChain(
      std::vector<TestBuffer>{{kData, 0x800, true}, {kData + 0x1000, 0x800, true}});
  rng_.QueueNotify(0);
  auto used = driver_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0x1000u);
  EXPECT_NE(ReadBack(kData, 0x800), std::vector<uint8_t>(0x800, 0));
  EXPECT_NE(ReadBack(kData + 0x1000, 0x800), std::vector<uint8_t>(0x800, 0));
  EXPECT_EQ(ReadBack(kData + 0x800, 0x800), std::vector<uint8_t>(0x800, 0));
  EXPECT_EQ(interrupt_.used, std::vector<uint16_t>{0});
  EXPECT_EQ(rng_.counters().bytes, 0x1000u);
}

TEST_F(RngTest, BoundsEachRequest) {
  uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{testing::kRegion1Base, 1 << 20, true}});
  rng_.QueueNotify(0);
  auto used = driver_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, Rng::kMaxRequestBytes);
}

TEST_F(RngTest, CompletesBadAndReadOnlyChainsWithZeroBytes) {
  driver_.WriteDescriptor(0, kData, 8, kDescFNext, 0);  // loop
  driver_.Publish(0);
  driver_.WriteDescriptor(1, kData, 8, 0, 0);  // nothing writable
  driver_.Publish(1);
  rng_.QueueNotify(0);
  for (uint16_t head : {0, 1}) {
    auto used = driver_.NextUsed();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, 0u);
  }
  EXPECT_EQ(rng_.counters().bad_chains, 1u);
  EXPECT_FALSE(rng_.needs_reset());
}

TEST_F(RngTest, BrokenRingNeedsReset) {
  driver_.SetAvailIdx(100);
  rng_.QueueNotify(0);
  EXPECT_TRUE(rng_.needs_reset());
  EXPECT_EQ(interrupt_.config_changes, 1);
  rng_.QueueNotify(0);
  EXPECT_EQ(interrupt_.config_changes, 1);
  rng_.Reset();
  EXPECT_FALSE(rng_.needs_reset());
}

TEST_F(RngTest, NotificationsWhileInactiveAreDropped) {
  rng_.Reset();
  driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
  rng_.QueueNotify(0);
  EXPECT_FALSE(driver_.NextUsed());
  EXPECT_EQ(rng_.counters().dropped_notifications, 1u);
  // Activation picks up buffers made available before it.
  ASSERT_TRUE(rng_.Activate(ActivateContext{memory_, queues_, kFVersion1, interrupt_}));
  EXPECT_TRUE(driver_.NextUsed());
}

TEST_F(RngTest, UnknownQueueIsDropped) {
  rng_.QueueNotify(1);
  EXPECT_EQ(rng_.counters().dropped_notifications, 1u);
}

}  // namespace
}  // namespace vireo::virtio
