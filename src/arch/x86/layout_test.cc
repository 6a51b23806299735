#include "arch/x86/layout.h"

#include <gtest/gtest.h>

namespace vireo::x86 {
namespace {

TEST(RamLayout, SmallGuestIsOneLowRange) {
  auto ranges = RamLayout(256ull << 20);
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0].size, 256ull << 20);
}

TEST(RamLayout, LargeGuestSplitsAroundTheMmioHole) {
  auto ranges = RamLayout(5ull << 30);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].end(), kMmioHoleStart);
  EXPECT_EQ(ranges[1].base, kRamAbove4g);
  EXPECT_EQ(ranges[0].size + ranges[1].size, 5ull << 30);
}

TEST(E820Map, ReservesTheLegacyAreaAndCoversAllRam) {
  auto map = E820Map(5ull << 30);
  uint64_t ram = 0;
  for (const auto& e : map) {
    if (e.type == E820Type::kRam) ram += e.size;
    EXPECT_FALSE(e.addr < kMmioHoleEnd && e.addr + e.size > kMmioHoleStart &&
                 e.type == E820Type::kRam)
        << "RAM must not overlap the MMIO hole";
  }
  // All RAM except the legacy hole below 1 MiB is reported usable.
  EXPECT_EQ(ram, (5ull << 30) - (kHighMemory - kEbda));
  EXPECT_EQ(map[1].type, E820Type::kReserved);
}

}  // namespace
}  // namespace vireo::x86
