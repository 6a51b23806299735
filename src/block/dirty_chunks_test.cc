#include "block/dirty_chunks.h"

#include <gtest/gtest.h>

#include <thread>

namespace vireo::block {
namespace {

constexpr uint64_t kChunk = DirtyChunkMap::kChunkSize;

// Before Start (and after Stop) a write costs nothing and is not recorded.
TEST(DirtyChunkMapTest, RecordsNothingWhileNotTracking) {
  DirtyChunkMap map(16 << 20);
  map.Mark(0, 4096);
  map.Start();
  EXPECT_TRUE(map.Take().empty());
  map.Stop();
  map.Mark(kChunk, 1);
  EXPECT_EQ(map.CountDirty(), 0u);
}

// A write marks every chunk it touches, and only those; Take clears what it returns.
TEST(DirtyChunkMapTest, MarksEveryChunkARangeTouches) {
  DirtyChunkMap map(16 << 20);
  map.Start();
  map.Mark(kChunk - 512, 1024);   // straddles chunks 0 and 1
  map.Mark(10 * kChunk, kChunk);  // exactly chunk 10
  map.Mark(200 * kChunk + 7, 1);  // one byte of chunk 200
  EXPECT_EQ(map.CountDirty(), 4u);
  EXPECT_EQ(map.Take(), (std::vector<uint64_t>{0, 1, 10, 200}));
  EXPECT_TRUE(map.Take().empty());
  map.Mark(64 * kChunk, 64 * kChunk);  // a whole bitmap word
  EXPECT_EQ(map.Take().size(), 64u);
}

// The last chunk of a disk whose size is not a multiple of the chunk is short, and ranges
// past the end are clamped instead of marking chunks that do not exist.
TEST(DirtyChunkMapTest, ClampsToTheDiskAndShortensTheLastChunk) {
  DirtyChunkMap map(3 * kChunk + 512);
  EXPECT_EQ(map.chunk_count(), 4u);
  EXPECT_EQ(map.ChunkLength(2), kChunk);
  EXPECT_EQ(map.ChunkLength(3), 512u);
  EXPECT_EQ(map.ChunkLength(4), 0u);
  map.Start();
  map.Mark(3 * kChunk, ~uint64_t{0});  // length overflowing the offset
  map.Mark(100 * kChunk, 4096);        // entirely past the end
  map.Mark(0, 0);                      // empty
  EXPECT_EQ(map.Take(), (std::vector<uint64_t>{3}));
}

// Start forgets writes recorded before it: a new migration begins from a full copy.
TEST(DirtyChunkMapTest, StartClearsEarlierMarks) {
  DirtyChunkMap map(1 << 20);
  map.Start();
  map.Mark(0, 1);
  map.Start();
  EXPECT_EQ(map.CountDirty(), 0u);
}

// Marks from another thread while the owner takes: every chunk marked is returned by some
// Take (none lost), exactly the set marked.
TEST(DirtyChunkMapTest, ConcurrentMarksAreNeverLost) {
  DirtyChunkMap map(64 << 20);  // 1024 chunks
  map.Start();
  std::vector<bool> seen(map.chunk_count(), false);
  std::thread writer([&] {
    for (int pass = 0; pass < 20; ++pass) {
      for (uint64_t c = 0; c < map.chunk_count(); c += 3) map.Mark(c * kChunk, 1);
    }
  });
  for (int i = 0; i < 1000; ++i) {
    for (uint64_t c : map.Take()) seen[c] = true;
  }
  writer.join();
  for (uint64_t c : map.Take()) seen[c] = true;
  for (uint64_t c = 0; c < map.chunk_count(); ++c) EXPECT_EQ(seen[c], c % 3 == 0) << c;
}

}  // namespace
}  // namespace vireo::block
