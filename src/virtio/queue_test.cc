#include "virtio/queue.h"

#include <gtest/gtest.h>

#include <vector>

#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using testing::kRegion0End;
using testing::kRegion1Base;
using testing::TestBuffer;
using testing::TestDriver;

constexpr GuestAddress kData = 0x40000;

class QueueTest : public ::testing::Test {
 protected:
  QueueTest() : memory_(testing::MakeTestMemory()), driver_(memory_, 16), queue_(256) {
    driver_.Configure(queue_);
  }
  void Activate() { ASSERT_TRUE(queue_.Activate(memory_)); }
  PopResult Pop() { return queue_.Pop(memory_, chain_); }

  GuestMemory memory_;
  TestDriver driver_;
  Queue queue_;
  DescriptorChain chain_;
};

// ---- Activation (2.7: size and ring alignment / extents). ----

TEST_F(QueueTest, ActivatesValidRings) {
  Activate();
  EXPECT_TRUE(queue_.ready());
  EXPECT_EQ(queue_.size(), 16);
  EXPECT_EQ(Pop(), PopResult::kEmpty);
}

TEST_F(QueueTest, RefusesSizeNotPowerOfTwoZeroOrAboveMax) {
  for (uint16_t size : {0, 3, 12, 255, 512}) {
    queue_.set_size(size);
    EXPECT_FALSE(queue_.Activate(memory_)) << size;
    EXPECT_FALSE(queue_.ready());
  }
  EXPECT_EQ(queue_.counters().invalid_activations, 5u);
  queue_.set_size(256);
  EXPECT_TRUE(queue_.Activate(memory_));
}

TEST_F(QueueTest, RefusesMisalignedRings) {
  queue_.set_desc_table(driver_.desc_table() + 8);
  EXPECT_FALSE(queue_.Activate(memory_));
  driver_.Configure(queue_);
  queue_.set_avail_ring(driver_.avail_ring() + 1);
  EXPECT_FALSE(queue_.Activate(memory_));
  driver_.Configure(queue_);
  queue_.set_used_ring(driver_.used_ring() + 2);
  EXPECT_FALSE(queue_.Activate(memory_));
  driver_.Configure(queue_);
  Activate();
}

TEST_F(QueueTest, RefusesRingsOutsideOrStraddlingRam) {
  const GuestAddress bad[] = {
      kRegion0End - 16,              // straddles the end of region 0
      kRegion0End + 0x1000,          // in the hole
      0xfffffffffffffff0ull,         // wraps around the address space
      kRegion1Base + (1 << 20) - 16  // straddles the end of region 1
  };
  for (GuestAddress addr : bad) {
    queue_.Deactivate();
    driver_.Configure(queue_);
    queue_.set_desc_table(addr);
    EXPECT_FALSE(queue_.Activate(memory_)) << std::hex << addr;
    driver_.Configure(queue_);
    queue_.set_avail_ring(addr);
    EXPECT_FALSE(queue_.Activate(memory_)) << std::hex << addr;
    driver_.Configure(queue_);
    queue_.set_used_ring(addr);
    EXPECT_FALSE(queue_.Activate(memory_)) << std::hex << addr;
  }
  // A ring in the second region is fine.
  TestDriver high(memory_, 16, kRegion1Base);
  high.Configure(queue_);
  Activate();
}

TEST_F(QueueTest, SettersAreIgnoredWhileReady) {
  Activate();
  queue_.set_size(4);
  queue_.set_desc_table(0);
  EXPECT_EQ(queue_.size(), 16);
  EXPECT_EQ(queue_.desc_table(), driver_.desc_table());
  queue_.Deactivate();
  queue_.set_size(4);
  EXPECT_EQ(queue_.size(), 4);
}

TEST_F(QueueTest, InactiveQueuePopsNothingAndRefusesUsed) {
  driver_.AddChain(std::vector<TestBuffer>{{kData, 8, false}});
  EXPECT_EQ(Pop(), PopResult::kEmpty);
  EXPECT_FALSE(queue_.AddUsed(memory_, 0, 0));
  EXPECT_FALSE(queue_.NeedsNotification(memory_));
}

// ---- Chains (2.7.5, 2.7.4.2). ----

TEST_F(QueueTest, PopsDirectChainReadableThenWritable) {
  Activate();
  uint16_t head = driver_.AddChain(std::vector<TestBuffer>{
      {kData, 10, false}, {kData + 0x100, 20, false}, {kData + 0x200, 30, true}});
  ASSERT_EQ(Pop(), PopResult::kChain);
  EXPECT_EQ(chain_.head(), head);
  ASSERT_EQ(chain_.buffers().size(), 3u);
  EXPECT_EQ(chain_.readable().size(), 2u);
  EXPECT_EQ(chain_.writable().size(), 1u);
  EXPECT_EQ(chain_.readable_len(), 30u);
  EXPECT_EQ(chain_.writable_len(), 30u);
  EXPECT_EQ(chain_.writable()[0].addr, kData + 0x200);
  EXPECT_EQ(Pop(), PopResult::kEmpty);

  EXPECT_TRUE(queue_.AddUsed(memory_, head, 30));
  auto used = driver_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 30u);
  EXPECT_TRUE(queue_.NeedsNotification(memory_));
  EXPECT_FALSE(queue_.NeedsNotification(memory_));  // nothing new since
  EXPECT_EQ(queue_.counters().chains, 1u);
}

TEST_F(QueueTest, PopsIndirectChain) {
  queue_.set_indirect_desc(true);
  Activate();
  uint16_t head = driver_.AddIndirectChain(
      0x50000, std::vector<TestBuffer>{
                   {kData, 16, false}, {kData + 0x100, 64, true}, {kData + 0x200, 64, true}});
  ASSERT_EQ(Pop(), PopResult::kChain);
  EXPECT_EQ(chain_.head(), head);
  EXPECT_EQ(chain_.readable_len(), 16u);
  EXPECT_EQ(chain_.writable_len(), 128u);
  EXPECT_EQ(chain_.descriptor_count(), 4u);
}

TEST_F(QueueTest, DirectDescriptorsThenIndirectTable) {
  // 2.7.5.3.2: "zero or more normal chained descriptors followed by a single descriptor
  // with flags&VIRTQ_DESC_F_INDIRECT".
  queue_.set_indirect_desc(true);
  Activate();
  driver_.WriteDescriptor(0x50000, 0, kData + 0x100, 8, kDescFWrite, 0);
  driver_.WriteDescriptor(0, kData, 4, kDescFNext, 1);
  driver_.WriteDescriptor(1, 0x50000, 16, kDescFIndirect, 0);
  driver_.Publish(0);
  ASSERT_EQ(Pop(), PopResult::kChain);
  EXPECT_EQ(chain_.readable_len(), 4u);
  EXPECT_EQ(chain_.writable_len(), 8u);
}

class BadChainTest : public QueueTest {
 protected:
  void SetUp() override {
    queue_.set_indirect_desc(true);
    Activate();
  }
  // Publishes descriptor 0 as a chain head and expects a bad chain the device completes.
  void ExpectBadChain(uint16_t head = 0) {
    driver_.Publish(head);
    uint64_t before = queue_.counters().bad_chains;
    ASSERT_EQ(Pop(), PopResult::kBadChain);
    EXPECT_EQ(chain_.head(), head);
    EXPECT_TRUE(chain_.buffers().empty());
    EXPECT_EQ(queue_.counters().bad_chains, before + 1);
    EXPECT_TRUE(queue_.AddUsed(memory_, head, 0));
    auto used = driver_.NextUsed();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, 0u);
    EXPECT_FALSE(queue_.broken());
  }
};

TEST_F(BadChainTest, DescriptorLoop) {
  driver_.WriteDescriptor(0, kData, 8, kDescFNext, 1);
  driver_.WriteDescriptor(1, kData, 8, kDescFNext, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, DescriptorSelfLoop) {
  driver_.WriteDescriptor(3, kData, 8, kDescFNext | kDescFWrite, 3);
  ExpectBadChain(3);
}

TEST_F(BadChainTest, NextOutOfRange) {
  driver_.WriteDescriptor(0, kData, 8, kDescFNext, 16);
  ExpectBadChain();
}

TEST_F(BadChainTest, BufferInHole) {
  driver_.WriteDescriptor(0, kRegion0End + 0x10, 8, 0, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, BufferStraddlesRegionEnd) {
  driver_.WriteDescriptor(0, kRegion0End - 8, 16, kDescFWrite, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, BufferAddressWraps) {
  driver_.WriteDescriptor(0, 0xfffffffffffffff8ull, 16, 0, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, MaximalLengthOutsideRam) {
  driver_.WriteDescriptor(0, 0, 0xffffffff, 0, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, ReadableAfterWritable) {
  driver_.WriteDescriptor(0, kData, 8, kDescFWrite | kDescFNext, 1);
  driver_.WriteDescriptor(1, kData + 8, 8, 0, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, ZeroLengthReadableAfterWritable) {
  driver_.WriteDescriptor(0, kData, 8, kDescFWrite | kDescFNext, 1);
  driver_.WriteDescriptor(1, 0, 0, 0, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectInsideIndirect) {
  driver_.WriteDescriptor(0x50000, 0, 0x51000, 16, kDescFIndirect, 0);
  driver_.WriteDescriptor(0x51000, 0, kData, 8, 0, 0);
  driver_.WriteDescriptor(0, 0x50000, 16, kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectWithNext) {
  driver_.WriteDescriptor(0x50000, 0, kData, 8, 0, 0);
  driver_.WriteDescriptor(0, 0x50000, 16, kDescFIndirect | kDescFNext, 1);
  driver_.WriteDescriptor(1, kData, 8, 0, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectLengthNotMultipleOf16) {
  driver_.WriteDescriptor(0x50000, 0, kData, 8, 0, 0);
  driver_.WriteDescriptor(0, 0x50000, 24, kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectEmptyTable) {
  driver_.WriteDescriptor(0, 0x50000, 0, kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectTableOutsideRam) {
  driver_.WriteDescriptor(0, kRegion0End - 16, 32, kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectTableTooLarge) {
  driver_.WriteDescriptor(0, 0x50000, 16 * (kMaxIndirectEntries + 1), kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectLoop) {
  driver_.WriteDescriptor(0x50000, 0, kData, 8, kDescFNext, 1);
  driver_.WriteDescriptor(0x50000, 1, kData, 8, kDescFNext, 0);
  driver_.WriteDescriptor(0, 0x50000, 32, kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(BadChainTest, IndirectNextOutOfTable) {
  driver_.WriteDescriptor(0x50000, 0, kData, 8, kDescFNext, 2);
  driver_.WriteDescriptor(0, 0x50000, 32, kDescFIndirect, 0);
  ExpectBadChain();
}

TEST_F(QueueTest, IndirectWithoutNegotiationIsBad) {
  Activate();
  driver_.AddIndirectChain(0x50000, std::vector<TestBuffer>{{kData, 8, false}});
  EXPECT_EQ(Pop(), PopResult::kBadChain);
}

TEST_F(QueueTest, ZeroLengthDescriptorsAreHarmless) {
  Activate();
  driver_.AddChain(std::vector<TestBuffer>{
      {0xdeadbeef000, 0, false}, {kData, 4, false}, {kData + 8, 0, true}, {kData + 16, 4, true}});
  ASSERT_EQ(Pop(), PopResult::kChain);
  EXPECT_EQ(chain_.buffers().size(), 2u);
  EXPECT_EQ(chain_.descriptor_count(), 4u);
  EXPECT_EQ(chain_.readable_len(), 4u);
  EXPECT_EQ(chain_.writable_len(), 4u);
}

TEST_F(QueueTest, BadChainDoesNotStopTheQueue) {
  Activate();
  driver_.WriteDescriptor(0, kData, 8, kDescFNext, 0);  // loop
  driver_.Publish(0);
  driver_.WriteDescriptor(1, kData, 8, 0, 0);
  driver_.Publish(1);
  EXPECT_EQ(Pop(), PopResult::kBadChain);
  ASSERT_EQ(Pop(), PopResult::kChain);
  EXPECT_EQ(chain_.head(), 1);
}

// ---- The avail ring itself (2.7.6). ----

TEST_F(QueueTest, AvailIdxJumpingBeyondSizeBreaksQueue) {
  Activate();
  driver_.SetAvailIdx(17);
  EXPECT_EQ(Pop(), PopResult::kBroken);
  EXPECT_TRUE(queue_.broken());
  driver_.SetAvailIdx(1);  // sticky until reset
  EXPECT_EQ(Pop(), PopResult::kBroken);
  EXPECT_EQ(queue_.counters().broken, 1u);
  queue_.Reset();
  EXPECT_FALSE(queue_.broken());
}

TEST_F(QueueTest, HeadIndexOutOfRangeBreaksQueue) {
  Activate();
  driver_.Publish(16);
  EXPECT_EQ(Pop(), PopResult::kBroken);
  driver_.Publish(0xffff);
  EXPECT_EQ(Pop(), PopResult::kBroken);
}

TEST_F(QueueTest, AddUsedRefusesBadHead) {
  Activate();
  EXPECT_FALSE(queue_.AddUsed(memory_, 16, 0));
  EXPECT_EQ(queue_.counters().bad_used, 1u);
  EXPECT_EQ(driver_.ReadUsedIdx(), 0);
}

TEST_F(QueueTest, IndicesWrapAround16Bits) {
  TestDriver small(memory_, 4);
  Queue queue(4);
  small.Configure(queue);
  ASSERT_TRUE(queue.Activate(memory_));
  for (int i = 0; i < 70000; ++i) {
    uint16_t head = small.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
    ASSERT_EQ(queue.Pop(memory_, chain_), PopResult::kChain) << i;
    ASSERT_EQ(chain_.head(), head);
    ASSERT_TRUE(queue.AddUsed(memory_, head, 8));
    ASSERT_TRUE(small.NextUsed());
  }
  EXPECT_EQ(queue.next_avail(), static_cast<uint16_t>(70000));
  EXPECT_EQ(queue.Pop(memory_, chain_), PopResult::kEmpty);
}

TEST_F(QueueTest, ChainStorageIsReused) {
  Activate();
  std::vector<TestBuffer> buffers(8, TestBuffer{kData, 8, false});
  driver_.AddChain(buffers);
  ASSERT_EQ(Pop(), PopResult::kChain);
  const ChainBuffer* storage = chain_.buffers().data();
  for (int i = 0; i < 100; ++i) {
    driver_.AddChain(std::vector<TestBuffer>(1 + i % 8, TestBuffer{kData, 8, false}));
    ASSERT_EQ(Pop(), PopResult::kChain);
    ASSERT_EQ(chain_.buffers().data(), storage);
    ASSERT_TRUE(queue_.AddUsed(memory_, chain_.head(), 0));
  }
}

// ---- Notification suppression (2.7.7, 2.7.10). ----

TEST_F(QueueTest, NoInterruptFlagSuppressesNotification) {
  Activate();
  driver_.SetAvailFlags(kAvailFNoInterrupt);
  uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
  ASSERT_EQ(Pop(), PopResult::kChain);
  queue_.AddUsed(memory_, head, 8);
  EXPECT_FALSE(queue_.NeedsNotification(memory_));
  driver_.SetAvailFlags(0);
  head = driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
  ASSERT_EQ(Pop(), PopResult::kChain);
  queue_.AddUsed(memory_, head, 8);
  EXPECT_TRUE(queue_.NeedsNotification(memory_));
}

TEST_F(QueueTest, EventIdxFollowsUsedEventAndPublishesAvailEvent) {
  queue_.set_event_idx(true);
  Activate();
  driver_.SetAvailFlags(kAvailFNoInterrupt);  // ignored with EVENT_IDX
  // The driver wants an interrupt once used idx passes 2 (i.e. after the 3rd element).
  driver_.SetUsedEvent(2);
  for (int i = 0; i < 4; ++i) {
    uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
    ASSERT_EQ(Pop(), PopResult::kChain);
    EXPECT_EQ(driver_.ReadAvailEvent(), i + 1);
    queue_.AddUsed(memory_, head, 8);
    EXPECT_EQ(queue_.NeedsNotification(memory_), i == 2) << i;
  }
  EXPECT_EQ(Pop(), PopResult::kEmpty);
  EXPECT_EQ(driver_.ReadAvailEvent(), 4);
  // Several elements at once: crossing used_event in a batch still notifies.
  driver_.SetUsedEvent(5);
  for (int i = 0; i < 3; ++i) {
    uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
    ASSERT_EQ(Pop(), PopResult::kChain);
    queue_.AddUsed(memory_, head, 8);
  }
  EXPECT_TRUE(queue_.NeedsNotification(memory_));
}

// ---- Snapshot state. ----

TEST_F(QueueTest, StateRoundTrips) {
  queue_.set_event_idx(true);
  Activate();
  uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
  driver_.AddChain(std::vector<TestBuffer>{{kData, 8, true}});
  ASSERT_EQ(Pop(), PopResult::kChain);
  queue_.AddUsed(memory_, head, 8);
  QueueState state = queue_.state();

  Queue restored(256);
  ASSERT_TRUE(restored.Restore(memory_, state));
  EXPECT_TRUE(restored.ready());
  EXPECT_EQ(restored.next_avail(), 1);
  EXPECT_EQ(restored.next_used(), 1);
  EXPECT_TRUE(restored.event_idx());
  ASSERT_EQ(restored.Pop(memory_, chain_), PopResult::kChain);
  EXPECT_EQ(chain_.head(), 1);
}

TEST_F(QueueTest, RestoreValidates) {
  QueueState state = queue_.state();
  state.ready = true;
  state.size = 3;
  Queue restored(256);
  EXPECT_FALSE(restored.Restore(memory_, state));
  EXPECT_FALSE(restored.ready());
  state.size = 16;
  state.used_ring = kRegion0End - 4;
  EXPECT_FALSE(restored.Restore(memory_, state));
  EXPECT_FALSE(restored.ready());
  EXPECT_EQ(restored.size(), 256);
}

// ---- Chain lengths near 2^32 need more than 4 GiB of RAM: mapped NORESERVE, untouched. ----

TEST(QueueLargeMemoryTest, TotalLengthOverflowIsBadButMaximalBufferIsFine) {
  const RamRange ranges[] = {{0, (4ull << 30) + (1 << 20)}};
  MemoryOptions options;
  options.transparent_huge_pages = false;
  auto memory = GuestMemory::Create(ranges, options);
  ASSERT_TRUE(memory);
  const GuestAddress base = 4ull << 30;  // rings above 4 GiB
  TestDriver driver(*memory, 8, base);
  Queue queue(8);
  driver.Configure(queue);
  ASSERT_TRUE(queue.Activate(*memory));
  DescriptorChain chain;

  driver.AddChain(std::vector<TestBuffer>{{0, 0xffffffff, true}});
  ASSERT_EQ(queue.Pop(*memory, chain), PopResult::kChain);
  EXPECT_EQ(chain.writable_len(), 0xffffffffu);

  driver.AddChain(std::vector<TestBuffer>{{0, 0xffffffff, false}, {0, 1, true}});
  EXPECT_EQ(queue.Pop(*memory, chain), PopResult::kBadChain);
  driver.AddChain(std::vector<TestBuffer>{{0, 0x80000000, true}, {0, 0x80000000, true}});
  EXPECT_EQ(queue.Pop(*memory, chain), PopResult::kBadChain);
}

}  // namespace
}  // namespace vireo::virtio
