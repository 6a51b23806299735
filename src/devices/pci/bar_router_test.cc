#include "devices/pci/bar_router.h"

#include <gtest/gtest.h>

#include <memory>

#include "devices/pci/bar_allocator.h"
#include "devices/pci/fake_pci_device.h"

namespace vireo::pci {
namespace {

using testing::FakePciDevice;
using testing::Read32;

TEST(BarAllocator, NaturallyAlignedUntilFull) {
  BarAllocator allocator(0xc0000000, 0xc0100000);
  EXPECT_EQ(allocator.Allocate(0x1000).value_or(0), 0xc0000000u);
  EXPECT_EQ(allocator.Allocate(0x10000).value_or(0), 0xc0010000u);
  EXPECT_EQ(allocator.Allocate(0x10).value_or(0), 0xc0020000u);
  EXPECT_EQ(allocator.Allocate(0x40000).value_or(0), 0xc0040000u);
  EXPECT_FALSE(allocator.Allocate(0x100000));
  EXPECT_FALSE(allocator.Allocate(uint64_t{1} << 63));
  EXPECT_FALSE(allocator.Allocate(0x3000));
  EXPECT_EQ(allocator.Allocate(0x10).value_or(0), 0xc0080000u)
      << "a failure does not consume space";
}

TEST(PciBarRouter, DispatchesByAbsoluteAddress) {
  PciBarRouter router("bars", 0xc0000000, 0x20000000);
  auto a = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{});
  auto b = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{});
  router.Map(1, 0, 0xc0000000, 0x1000, a);
  router.Map(2, 3, 0xc0002000, 0x1000, b);
  EXPECT_EQ(Read32(router, 0x2010), 0x10u);
  ASSERT_EQ(b->handlers[3].reads.size(), 1u);
  EXPECT_EQ(b->handlers[3].reads[0].offset, 0x10u);
  EXPECT_EQ(Read32(router, 0xffe), 0xffffffffu) << "straddles the end of a BAR";
  EXPECT_EQ(Read32(router, 0x1000), 0xffffffffu) << "between BARs";
  EXPECT_EQ(router.unrouted_accesses(), 2u);

  // Remapping replaces the old route; overlapping BARs resolve to the lowest slot.
  router.Map(2, 3, 0xc0000000, 0x1000, b);
  EXPECT_EQ(router.route_count(), 2u);
  EXPECT_EQ(Read32(router, 0x20), 0x20u);
  EXPECT_EQ(a->handlers[0].reads.size(), 1u);
  router.Unmap(1, 0);
  EXPECT_EQ(Read32(router, 0x20), 0x20u);
  EXPECT_EQ(b->handlers[3].reads.size(), 2u);
  router.Unmap(2, 3);
  router.Unmap(2, 3);  // idempotent
  EXPECT_EQ(router.route_count(), 0u);
  EXPECT_EQ(Read32(router, 0x20), 0xffffffffu);
}

TEST(PciBarRouter, NoHandlerNoRoute) {
  PciBarRouter router("bars", 0xc0000000, 0x20000000);
  auto device = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{});
  router.Map(1, 7, 0xc0000000, 0x1000, device);  // bar_device(7) is nullptr
  EXPECT_EQ(router.route_count(), 0u);
}

}  // namespace
}  // namespace vireo::pci
