#include "virtio/balloon/discard.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <vector>

#include "virtio/testing/driver.h"

namespace vireo::virtio::balloon {
namespace {

using testing::kRegion0End;
using testing::kRegion1Base;
using testing::kRegion1End;

// Host pages of guest [addr, addr+len) that are resident (mincore on the host mapping).
size_t ResidentPages(const GuestMemory& memory, GuestAddress addr, uint64_t len) {
  auto span = memory.Span(addr, len);
  EXPECT_TRUE(span);
  if (!span) return 0;
  std::vector<unsigned char> vec(len / kPageSize);
  EXPECT_EQ(::mincore(span->data(), len, vec.data()), 0);
  size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return resident;
}

void Touch(const GuestMemory& memory, GuestAddress addr, uint64_t len, uint8_t value) {
  std::vector<uint8_t> bytes(len, value);
  ASSERT_TRUE(memory.Write(addr, bytes));
}

uint32_t Pfn(GuestAddress addr) { return static_cast<uint32_t>(addr >> kPageShift); }

TEST(DiscardGuestRange, DropsResidentPagesAndReadsZeros) {
  GuestMemory memory = testing::MakeTestMemory();
  Touch(memory, kRegion1Base, 16 * kPageSize, 0xab);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base, 16 * kPageSize), 16u);
  EXPECT_EQ(DiscardGuestRange(memory, kRegion1Base + 4 * kPageSize, 8 * kPageSize),
            DiscardResult::kDone);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base, 4 * kPageSize), 4u);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base + 4 * kPageSize, 8 * kPageSize), 0u);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base + 12 * kPageSize, 4 * kPageSize), 4u);
  std::vector<uint8_t> back(16 * kPageSize);
  ASSERT_TRUE(memory.Read(kRegion1Base, back));
  for (size_t i = 0; i < back.size(); ++i) {
    const bool discarded = i >= 4 * kPageSize && i < 12 * kPageSize;
    ASSERT_EQ(back[i], discarded ? 0 : 0xab) << i;
  }
}

TEST(DiscardGuestRange, RefusesRangesOutsideOneRegion) {
  GuestMemory memory = testing::MakeTestMemory();
  EXPECT_EQ(DiscardGuestRange(memory, kRegion0End, kPageSize), DiscardResult::kOutsideRam);
  EXPECT_EQ(DiscardGuestRange(memory, kRegion0End - kPageSize, 2 * kPageSize),
            DiscardResult::kOutsideRam);
  EXPECT_EQ(DiscardGuestRange(memory, kRegion1End, kPageSize), DiscardResult::kOutsideRam);
  EXPECT_EQ(DiscardGuestRange(memory, ~0ull << kPageShift, kPageSize), DiscardResult::kOutsideRam);
  EXPECT_EQ(DiscardGuestRange(memory, 0, ~0ull << kPageShift), DiscardResult::kOutsideRam);
}

TEST(DiscardGuestRange, RefusesUnalignedAndEmptyRanges) {
  GuestMemory memory = testing::MakeTestMemory();
  EXPECT_EQ(DiscardGuestRange(memory, kRegion1Base + 1, kPageSize), DiscardResult::kUnaligned);
  EXPECT_EQ(DiscardGuestRange(memory, kRegion1Base, 100), DiscardResult::kUnaligned);
  EXPECT_EQ(DiscardGuestRange(memory, kRegion1Base, 0), DiscardResult::kUnaligned);
}

TEST(PageDiscarder, CoalescesConsecutivePagesWithinARegion) {
  GuestMemory memory = testing::MakeTestMemory();
  Touch(memory, kRegion1Base, 32 * kPageSize, 1);
  Touch(memory, kRegion0End - 2 * kPageSize, 2 * kPageSize, 1);
  PageDiscarder discarder(memory);
  for (uint32_t i = 0; i < 8; ++i) EXPECT_TRUE(discarder.Add(Pfn(kRegion1Base) + i));
  EXPECT_TRUE(discarder.Add(Pfn(kRegion1Base) + 20));  // a new run
  // The last two pages of region 0, then the first page of the hole: the run stops at the
  // region's end and the hole's page is refused.
  EXPECT_TRUE(discarder.Add(Pfn(kRegion0End) - 2));
  EXPECT_TRUE(discarder.Add(Pfn(kRegion0End) - 1));
  EXPECT_FALSE(discarder.Add(Pfn(kRegion0End)));
  EXPECT_FALSE(discarder.Add(0xffffffff));
  discarder.Flush();
  const DiscardStats& stats = discarder.stats();
  EXPECT_EQ(stats.pages, 11u);
  EXPECT_EQ(stats.bad_pfns, 2u);
  EXPECT_EQ(stats.calls, 3u);
  EXPECT_EQ(stats.bytes, 11 * kPageSize);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base, 8 * kPageSize), 0u);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base + 8 * kPageSize, 12 * kPageSize), 12u);
  EXPECT_EQ(ResidentPages(memory, kRegion1Base + 20 * kPageSize, kPageSize), 0u);
  EXPECT_EQ(ResidentPages(memory, kRegion0End - 2 * kPageSize, 2 * kPageSize), 0u);
}

TEST(PageDiscarder, RegionsAdjacentInGuestSpaceAreDiscardedSeparately) {
  const RamRange ranges[] = {{0, 64 * kPageSize}, {64 * kPageSize, 64 * kPageSize}};
  MemoryOptions options;
  options.transparent_huge_pages = false;
  auto memory = GuestMemory::Create(ranges, options);
  ASSERT_TRUE(memory);
  PageDiscarder discarder(*memory);
  for (uint32_t pfn = 60; pfn < 70; ++pfn) EXPECT_TRUE(discarder.Add(pfn));
  discarder.Flush();
  EXPECT_EQ(discarder.stats().calls, 2u);  // the run is split at the region boundary
  EXPECT_EQ(discarder.stats().bytes, 10 * kPageSize);
}

TEST(PageDiscarder, RepeatedPfnIsNotARun) {
  GuestMemory memory = testing::MakeTestMemory();
  PageDiscarder discarder(memory);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(discarder.Add(Pfn(kRegion1Base)));
  discarder.Flush();
  EXPECT_EQ(discarder.stats().pages, 3u);
  EXPECT_EQ(discarder.stats().calls, 3u);
  EXPECT_EQ(discarder.stats().bytes, 3 * kPageSize);
}

}  // namespace
}  // namespace vireo::virtio::balloon
