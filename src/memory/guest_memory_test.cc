#include "memory/guest_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <vector>

namespace vireo {
namespace {

GuestMemory TwoRegions() {
  const RamRange ranges[] = {{0, 0x10000}, {0x100000, 0x10000}};
  auto memory = GuestMemory::Create(ranges, {});
  EXPECT_TRUE(memory) << memory.error().message;
  return std::move(*memory);
}

TEST(GuestMemory, ReadBackWhatWasWritten) {
  GuestMemory memory = TwoRegions();
  ASSERT_TRUE(memory.WriteObj<uint32_t>(0x100010, 0xdeadbeef));
  EXPECT_EQ(memory.ReadObj<uint32_t>(0x100010), 0xdeadbeefu);
}

TEST(GuestMemory, SpanMustLieInOneRegion) {
  GuestMemory memory = TwoRegions();
  EXPECT_TRUE(memory.Span(0xfff0, 0x10));
  EXPECT_FALSE(memory.Span(0xfff0, 0x11));  // runs off the end of region 0
  EXPECT_FALSE(memory.Span(0x20000, 1));    // in the gap
  EXPECT_FALSE(memory.Span(0x10fffc, 8));   // runs off the end of region 1
}

TEST(GuestMemory, HugeLengthsDoNotWrap) {
  GuestMemory memory = TwoRegions();
  EXPECT_FALSE(memory.Span(0x100000, UINT64_MAX));
  EXPECT_FALSE(memory.Span(UINT64_MAX - 4, 8));
  std::array<uint8_t, 8> buffer{};
  EXPECT_FALSE(memory.Read(UINT64_MAX - 3, buffer));
}

TEST(GuestMemory, WriteOrFailNamesWhatDidNotFit) {
  GuestMemory memory = TwoRegions();
  std::array<uint8_t, 32> data{};
  auto status = memory.WriteOrFail(0x10fff0, data, "initrd");
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("initrd"), std::string::npos);
}

TEST(GuestMemory, RejectsOverlappingRanges) {
  const RamRange ranges[] = {{0, 0x10000}, {0x8000, 0x10000}};
  EXPECT_FALSE(GuestMemory::Create(ranges, {}));
}

TEST(GuestMemory, EmptyAccessesInsideRamSucceed) {
  GuestMemory memory = TwoRegions();
  EXPECT_TRUE(memory.Read(0x100, std::span<uint8_t>()));
  EXPECT_TRUE(memory.Write(0x100, std::span<const uint8_t>()));
  EXPECT_FALSE(memory.Read(0x20000, std::span<uint8_t>())) << "still outside RAM";
}

// An external mapping whose region starts part-way in: Span must add mapping_offset.
TEST(GuestMemory, FromRegionsHonoursMappingOffset) {
  void* addr = ::mmap(nullptr, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(addr, MAP_FAILED);
  static_cast<uint8_t*>(addr)[0x1000] = 0x5a;
  std::vector<GuestMemory::Region> regions;
  regions.push_back({RamRange{0x40000, 0x2000}, Mapping(addr, 0x3000), 0x1000});
  auto memory = GuestMemory::FromRegions(std::move(regions));
  ASSERT_TRUE(memory) << memory.error().message;
  EXPECT_EQ(memory->ReadObj<uint8_t>(0x40000), 0x5a);
  EXPECT_TRUE(memory->Span(0x41fff, 1));
  EXPECT_FALSE(memory->Span(0x41fff, 2)) << "past the region, though still inside the mapping";
}

TEST(GuestMemory, FromRegionsRejectsBadRegions) {
  auto make = [](RamRange range, size_t map_size, uint64_t offset) {
    void* addr =
        ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return GuestMemory::Region{range, Mapping(addr, map_size), offset};
  };
  auto one = [](GuestMemory::Region region) {
    std::vector<GuestMemory::Region> regions;
    regions.push_back(std::move(region));
    return GuestMemory::FromRegions(std::move(regions));
  };
  EXPECT_FALSE(one(make({0, 0x2000}, 0x2000, 0x1000))) << "runs past the mapping";
  EXPECT_FALSE(one(make({0, 0}, 0x1000, 0))) << "empty";
  EXPECT_FALSE(one(make({UINT64_MAX - 0xfff, 0x1000}, 0x1000, 0))) << "wraps";
  EXPECT_FALSE(one(make({0, 0x1000}, 0x1000, UINT64_MAX))) << "offset overflows";
  std::vector<GuestMemory::Region> overlapping;
  overlapping.push_back(make({0, 0x2000}, 0x2000, 0));
  overlapping.push_back(make({0x1000, 0x1000}, 0x1000, 0));
  EXPECT_FALSE(GuestMemory::FromRegions(std::move(overlapping)));
  EXPECT_FALSE(GuestMemory::FromRegions({}));
}

TEST(GuestMemory, TotalSizeSumsRegions) { EXPECT_EQ(TwoRegions().total_size(), 0x20000u); }

// Pages set in a FetchWriteLog answer, as (region, page) pairs.
std::vector<std::pair<size_t, uint64_t>> PagesIn(const std::vector<std::vector<uint64_t>>& log) {
  std::vector<std::pair<size_t, uint64_t>> pages;
  for (size_t r = 0; r < log.size(); ++r) {
    for (size_t w = 0; w < log[r].size(); ++w) {
      for (int b = 0; b < 64; ++b) {
        if (log[r][w] & (uint64_t{1} << b)) pages.emplace_back(r, w * 64 + b);
      }
    }
  }
  return pages;
}

TEST(GuestMemory, WriteLogRecordsNothingUntilStarted) {
  GuestMemory memory = TwoRegions();
  ASSERT_TRUE(memory.WriteObj<uint32_t>(0x2000, 1));
  memory.MarkWritten(0x3000, 1);
  const auto log = memory.FetchWriteLog();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_TRUE(PagesIn(log).empty());
}

TEST(GuestMemory, WriteLogMarksEveryPageAWriteTouchesAndFetchClears) {
  GuestMemory memory = TwoRegions();
  memory.StartWriteLog();
  // 8 bytes across the boundary of pages 1 and 2 of region 1, and one byte in region 0.
  ASSERT_TRUE(memory.WriteObj<uint64_t>(0x101ffc, ~uint64_t{0}));
  ASSERT_TRUE(memory.WriteObj<uint8_t>(0xf000, 7));
  using Pages = std::vector<std::pair<size_t, uint64_t>>;
  EXPECT_EQ(PagesIn(memory.FetchWriteLog()), (Pages{{0, 15}, {1, 1}, {1, 2}}));
  EXPECT_TRUE(PagesIn(memory.FetchWriteLog()).empty()) << "a fetch clears the log";
  EXPECT_FALSE(memory.Write(0x20000, std::array<uint8_t, 1>{}));  // outside RAM: no mark
  EXPECT_TRUE(PagesIn(memory.FetchWriteLog()).empty());
}

TEST(GuestMemory, WriteLogTakesWritesMadeThroughSpans) {
  GuestMemory memory = TwoRegions();
  memory.StartWriteLog();
  // What a device does with an iovec it built from a Span (a disk read, a received frame).
  auto span = memory.Span(0x100800, 0x1000);
  ASSERT_TRUE(span);
  std::fill(span->begin(), span->end(), uint8_t{0xaa});
  memory.MarkWrittenHost(span->data(), span->size());
  memory.MarkWritten(0x4000, 0x2000);
  int outside = 0;
  memory.MarkWrittenHost(&outside, sizeof(outside));  // not guest RAM: ignored
  using Pages = std::vector<std::pair<size_t, uint64_t>>;
  EXPECT_EQ(PagesIn(memory.FetchWriteLog()), (Pages{{0, 4}, {0, 5}, {1, 0}, {1, 1}}));
}

TEST(GuestMemory, WriteLogSurvivesAMove) {
  GuestMemory memory = TwoRegions();
  memory.StartWriteLog();
  GuestMemory moved = std::move(memory);
  ASSERT_TRUE(moved.WriteObj<uint8_t>(0x100000, 1));
  EXPECT_EQ(PagesIn(moved.FetchWriteLog()).size(), 1u);
}

}  // namespace
}  // namespace vireo
