#include "devices/bus.h"

#include <gtest/gtest.h>

#include <array>

namespace vireo {
namespace {

class Recorder : public BusDevice {
 public:
  std::string_view name() const override { return "recorder"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    for (auto& b : data) b = 0x5a;
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_value = data[0];
  }
  uint64_t last_offset = ~0ull;
  uint8_t last_value = 0;
};

TEST(Bus, DispatchesWithDeviceRelativeOffsets) {
  Bus bus("pio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.Insert(dev, 0x3f8, 8));
  const uint8_t value = 7;
  EXPECT_TRUE(bus.Write(0x3fb, {&value, 1}));
  EXPECT_EQ(dev->last_offset, 3u);
  EXPECT_EQ(dev->last_value, 7);
}

TEST(Bus, RejectsOverlappingRanges) {
  Bus bus("pio");
  ASSERT_TRUE(bus.Insert(std::make_shared<Recorder>(), 0x60, 1));
  ASSERT_TRUE(bus.Insert(std::make_shared<Recorder>(), 0x64, 1));
  auto overlap = bus.Insert(std::make_shared<Recorder>(), 0x5f, 2);
  ASSERT_FALSE(overlap);
  EXPECT_NE(overlap.error().message.find("overlaps"), std::string::npos);
  EXPECT_FALSE(bus.Insert(std::make_shared<Recorder>(), 0x10, 0));
}

TEST(Bus, UnclaimedReadsAreAllOnesAndCounted) {
  Bus bus("mmio");
  ASSERT_TRUE(bus.Insert(std::make_shared<Recorder>(), 0x1000, 0x100));
  std::array<uint8_t, 4> data{};
  EXPECT_FALSE(bus.ReadOrOpenBus(0x2000, data));
  EXPECT_EQ(data, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff}));
  // An access straddling the end of a device is not claimed either.
  EXPECT_FALSE(bus.ReadOrOpenBus(0x10fe, data));
  EXPECT_EQ(bus.unclaimed_accesses(), 2u);
  EXPECT_TRUE(bus.ReadOrOpenBus(0x10fc, data));
  EXPECT_EQ(data[0], 0x5a);
}

}  // namespace
}  // namespace vireo
