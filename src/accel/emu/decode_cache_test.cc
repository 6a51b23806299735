// Decode cache tests: O(1) invalidation by page generations and epochs (docs/emulator.md).
// Each test fails if a stale decode could be returned: after a store to its page, after
// Clear, after a counter wraps, or when two pages share a generation slot.
#include "accel/emu/decode_cache.h"

#include <gtest/gtest.h>

#include "accel/emu/decoder.h"

namespace vireo::emu {
namespace {

DecodedInsn Nop() {
  const uint8_t nop = 0x90;
  DecodedInsn insn;
  EXPECT_EQ(Decoder::Decode(&nop, 1, CpuMode::kLong64, &insn), DecodeStatus::kOk);
  return insn;
}

constexpr CpuMode k64 = CpuMode::kLong64;

TEST(DecodeCacheTest, StoreToAPageDropsItsDecodesOnlyAndTheModeIsPartOfTheKey) {
  DecodeCache cache;
  const DecodedInsn nop = Nop();
  cache.Insert(0x10010, k64, nop);
  cache.Insert(0x10ff0, k64, nop);
  cache.Insert(0x11000, k64, nop);
  ASSERT_NE(cache.Lookup(0x10010, k64), nullptr);
  EXPECT_EQ(cache.Lookup(0x10010, CpuMode::kProtected32), nullptr) << "mode is in the key";
  EXPECT_EQ(cache.Lookup(0x10011, k64), nullptr);
  cache.InvalidateWrite(0x10800, 1);
  EXPECT_EQ(cache.Lookup(0x10010, k64), nullptr);
  EXPECT_EQ(cache.Lookup(0x10ff0, k64), nullptr);
  EXPECT_NE(cache.Lookup(0x11000, k64), nullptr) << "the next page was not written";
  cache.InvalidateWrite(0x10ffe, 4);  // crosses into 0x11000's page
  EXPECT_EQ(cache.Lookup(0x11000, k64), nullptr);
  cache.Insert(0x10010, k64, nop);
  EXPECT_NE(cache.Lookup(0x10010, k64), nullptr) << "decoded again after the store";
}

TEST(DecodeCacheTest, StoreToAPageWithoutDecodesKeepsItsGeneration) {
  DecodeCache cache;
  const uint32_t g = cache.page_generation(0x20);
  cache.InvalidateWrite(0x20000, 8);
  EXPECT_EQ(cache.page_generation(0x20), g) << "no decodes there: nothing to drop";
  cache.Insert(0x20000, k64, Nop());
  cache.InvalidateWrite(0x20000, 8);
  const uint32_t after = cache.page_generation(0x20);
  EXPECT_NE(after, g | 1);
  cache.InvalidateWrite(0x20000, 8);
  EXPECT_EQ(cache.page_generation(0x20), after) << "no decodes since the last store";
}

// Pages kPageSlots apart share a generation slot: a store to one drops the other's decodes
// too (an extra miss), never the reverse (a stale hit).
TEST(DecodeCacheTest, PagesSharingAGenerationSlotOnlyMissMore) {
  DecodeCache cache;
  const uint64_t page = 0x123, alias = page + DecodeCache::kPageSlots;
  cache.Insert(page << 12, k64, Nop());
  cache.Insert((alias << 12) + 0x40, k64, Nop());
  ASSERT_NE(cache.Lookup(page << 12, k64), nullptr);
  cache.InvalidateWrite(alias << 12, 1);
  EXPECT_EQ(cache.Lookup(page << 12, k64), nullptr);
  EXPECT_EQ(cache.Lookup((alias << 12) + 0x40, k64), nullptr);
}

// Entries at the same index (addresses that hash alike) replace each other; the tag tells
// them apart.
TEST(DecodeCacheTest, EntriesOfDistantPagesDoNotAnswerForEachOther) {
  DecodeCache cache;
  const DecodedInsn nop = Nop();
  for (uint64_t page = 0; page < 4 * DecodeCache::kEntries / 4096 + 64; ++page) {
    cache.Insert((page << 12) + 0x10, k64, nop);
  }
  int hits = 0;
  for (uint64_t page = 0; page < 4 * DecodeCache::kEntries / 4096 + 64; ++page) {
    if (cache.Lookup((page << 12) + 0x10, k64)) ++hits;
    EXPECT_EQ(cache.Lookup((page << 12) + 0x11, k64), nullptr);
  }
  EXPECT_GT(hits, 0);
}

TEST(DecodeCacheTest, ClearDropsEverythingAndTheEpochWrapClearsForReal) {
  DecodeCache cache;
  cache.Insert(0x5000, k64, Nop());  // epoch 1
  cache.Clear();
  EXPECT_EQ(cache.Lookup(0x5000, k64), nullptr);
  cache.Insert(0x5000, k64, Nop());
  // 2^32 - 2 clears later the epoch is about to return to 1, where an entry of the first
  // epoch would match again: the wrap clears the tags instead.
  DecodeCache wrap;
  wrap.Insert(0x6000, k64, Nop());  // epoch 1
  wrap.set_epoch_for_test(0xffffffff);
  EXPECT_EQ(wrap.Lookup(0x6000, k64), nullptr);
  wrap.Clear();  // wraps to 0, clears, epoch 1 again
  EXPECT_EQ(wrap.Lookup(0x6000, k64), nullptr) << "an entry of epoch 1 came back";
  wrap.Insert(0x6000, k64, Nop());
  EXPECT_NE(wrap.Lookup(0x6000, k64), nullptr);
}

TEST(DecodeCacheTest, GenerationWrapClearsEverything) {
  DecodeCache cache;
  cache.Insert(0x7000, k64, Nop());  // page 7 at generation 1
  cache.Insert(0x9000, k64, Nop());  // another page
  // Page 7's slot has counted 2^31 - 1 stores since: its next store would make the counter
  // wrap to 0 and, one insert later, come back to 1, the entry's generation.
  cache.set_page_generation_for_test(7, DecodeCache::kLastGeneration | 1);
  EXPECT_EQ(cache.Lookup(0x7000, k64), nullptr);
  cache.InvalidateWrite(0x7000, 1);
  EXPECT_EQ(cache.page_generation(7), 0u);
  cache.Insert(0x7100, k64, Nop());  // generation 1 again
  EXPECT_EQ(cache.Lookup(0x7000, k64), nullptr) << "the entry from before the wrap came back";
  EXPECT_NE(cache.Lookup(0x7100, k64), nullptr);
  EXPECT_EQ(cache.Lookup(0x9000, k64), nullptr) << "the wrap clears every page";
}

// An entry's bytes stay while it is invalidated, so a handler running on the cached record
// keeps a valid instruction even if its own store drops it.
TEST(DecodeCacheTest, InvalidationLeavesTheRecordItselfIntact) {
  DecodeCache cache;
  const DecodedInsn nop = Nop();
  const DecodedInsn* cached = cache.Insert(0x8000, k64, nop);
  cache.InvalidateWrite(0x8000, 1);
  cache.Clear();
  EXPECT_EQ(*cached, nop);
}

}  // namespace
}  // namespace vireo::emu
