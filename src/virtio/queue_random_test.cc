// Bounded randomized test: random descriptors and rings, popped and used until empty.
// Whatever the bytes, Pop must terminate, touch only guest memory, and either yield a
// chain whose buffers lie in RAM or report a bad chain / broken ring.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "virtio/descriptor_io.h"
#include "virtio/queue.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

TEST(QueueRandomTest, RandomRingsNeverCrashAndTerminate) {
  GuestMemory memory = testing::MakeTestMemory();
  std::mt19937_64 rng(0x5eed);
  constexpr GuestAddress kRings = 0x10000;
  constexpr GuestAddress kIndirect = 0x50000;
  uint64_t chains = 0, bad = 0, broken = 0;
  DescriptorChain chain;
  std::vector<uint8_t> scratch(4096);

  for (int iteration = 0; iteration < 3000; ++iteration) {
    uint16_t size = static_cast<uint16_t>(1u << (rng() % 6));  // 1..32
    Queue queue(32);
    testing::TestDriver driver(memory, size, kRings);
    driver.Configure(queue);
    queue.set_event_idx(rng() & 1);
    queue.set_indirect_desc(rng() & 1);
    ASSERT_TRUE(queue.Activate(memory));

    // Random descriptors, mostly pointing at plausible places so chains sometimes work.
    auto random_desc = [&](GuestAddress table, uint16_t index, uint16_t entries) {
      uint64_t addr;
      switch (rng() % 6) {
        case 0:
          addr = rng();
          break;  // anywhere
        case 1:
          addr = testing::kRegion0End - (rng() % 64);
          break;  // straddling
        case 2:
          addr = kIndirect + 16 * (rng() % 4);
          break;  // an indirect table
        default:
          addr = 0x60000 + (rng() % 0x10000);
          break;  // plain data
      }
      uint32_t len = rng() % 8 == 0 ? static_cast<uint32_t>(rng()) : rng() % 256;
      if (rng() % 4 == 0) len = 16 * (1 + rng() % 4);
      uint16_t flags = rng() & 7;
      uint16_t next = rng() % 4 == 0 ? static_cast<uint16_t>(rng()) : rng() % (entries + 1);
      driver.WriteDescriptor(table, index, addr, len, flags, next);
    };
    for (uint16_t i = 0; i < size; ++i) random_desc(kRings, i, size);
    for (uint16_t i = 0; i < 4; ++i) random_desc(kIndirect, i, 4);
    // Random avail entries and index: usually sensible, sometimes garbage.
    uint16_t published = rng() % (size + 1);
    for (uint16_t i = 0; i < published; ++i) {
      driver.Publish(rng() % 8 == 0 ? static_cast<uint16_t>(rng()) : rng() % size);
    }
    if (rng() % 10 == 0) driver.SetAvailIdx(static_cast<uint16_t>(rng()));
    driver.SetUsedEvent(static_cast<uint16_t>(rng()));
    driver.SetAvailFlags(rng() & 1);

    // Pop and use until empty; bounded by the ring size plus one.
    int pops = 0;
    for (;; ++pops) {
      ASSERT_LE(pops, size + 1);
      PopResult result = queue.Pop(memory, chain);
      if (result == PopResult::kEmpty) break;
      if (result == PopResult::kBroken) {
        broken++;
        break;
      }
      if (result == PopResult::kChain) {
        chains++;
        for (const ChainBuffer& buffer : chain.buffers()) {
          ASSERT_TRUE(memory.Contains(buffer.addr, buffer.len));
        }
        ASSERT_LE(uint64_t{chain.readable_len()} + chain.writable_len(), 0xffffffffull);
        ChainReader reader(memory, chain);
        while (reader.Read(scratch) > 0) {
        }
        ChainWriter writer(memory, chain);
        size_t budget = 64 * 1024;
        while (budget > 0 &&
               writer.Write(std::span(scratch).first(std::min(budget, scratch.size()))) > 0) {
          budget -= std::min(budget, scratch.size());
        }
        ASSERT_TRUE(
            queue.AddUsed(memory, chain.head(), static_cast<uint32_t>(writer.bytes_written())));
      } else {
        bad++;
        ASSERT_TRUE(queue.AddUsed(memory, chain.head(), 0));
      }
      queue.NeedsNotification(memory);
    }
  }
  // The generator must exercise every outcome.
  EXPECT_GT(chains, 0u);
  EXPECT_GT(bad, 0u);
  EXPECT_GT(broken, 0u);
}

}  // namespace
}  // namespace vireo::virtio
