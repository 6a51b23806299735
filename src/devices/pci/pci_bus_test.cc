// PciBus as firmware and guest use it: BAR assignment at AddDevice, reprogramming
// through ECAM, and the routes that follow the BARs.
#include "devices/pci/pci_bus.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "devices/pci/config_access.h"
#include "devices/pci/fake_pci_device.h"

namespace vireo::pci {
namespace {

using testing::FakePciDevice;
using testing::Read32;
using testing::Write32;

constexpr BarWindow kMmio{0xc0000000, 0xe0000000};  // x86::kPciBarWindowStart/End

uint64_t EcamOffset(int device, int reg) { return uint64_t(device) << 15 | uint64_t(reg); }

class PciBusTest : public ::testing::Test {
 protected:
  // Reads through the MMIO router as a vCPU's MMIO exit would: absolute address.
  uint32_t MmioRead32(uint64_t address) {
    return Read32(*bus.mmio_router(), address - bus.mmio_router()->window_base());
  }
  void MmioWrite32(uint64_t address, uint32_t value) {
    Write32(*bus.mmio_router(), address - bus.mmio_router()->window_base(), value);
  }
  void SetCommand(int slot, uint16_t value) {
    uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
    ecam.Write(EcamOffset(slot, 0x04), bytes);
  }

  PciBus bus{kMmio};
  PciEcam ecam{bus};
};

TEST_F(PciBusTest, AddDeviceAssignsAlignedBarsAndEnablesDecoding) {
  auto device = std::make_shared<FakePciDevice>(
      std::vector<BarDefinition>{{.index = 0, .size = 0x1000},
                                 {.index = 1, .size = 0x100000, .type = BarType::kMemory64},
                                 {.index = 3, .size = 0x40, .type = BarType::kIo},
                                 {.index = 4, .size = 0x4000}});
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot) << slot.error().message;
  EXPECT_EQ(*slot, 1) << "slot 0 is the host bridge";

  // Largest first, each aligned to its size.
  EXPECT_EQ(device->config.BarAddress(1), 0xc0000000u);
  EXPECT_EQ(device->config.BarAddress(4), 0xc0100000u);
  EXPECT_EQ(device->config.BarAddress(0), 0xc0104000u);
  EXPECT_EQ(device->config.BarAddress(3), 0xc000u);
  EXPECT_EQ(Read32(ecam, EcamOffset(1, 0x18)), 0u) << "64-bit BAR's upper half";
  EXPECT_EQ(device->config.command() & 0x3, 0x3) << "memory and I/O decoding on";

  ASSERT_EQ(device->moves.size(), 4u);
  for (const auto& move : device->moves) EXPECT_EQ(move.old_address, kBarUnmapped);
  EXPECT_EQ(bus.mmio_router()->route_count(), 3u);
  EXPECT_EQ(bus.io_router()->route_count(), 1u);

  // A second device continues after the first, naturally aligned.
  auto second = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x10000}});
  ASSERT_TRUE(bus.AddDevice(second));
  EXPECT_EQ(second->config.BarAddress(0), 0xc0110000u);
}

TEST_F(PciBusTest, SlotsAndWindowsRunOut) {
  auto taken = bus.AddDevice(std::make_shared<FakePciDevice>(std::vector<BarDefinition>{}), 0);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("slot 0"), std::string::npos) << taken.error().message;
  EXPECT_FALSE(bus.AddDevice(std::make_shared<FakePciDevice>(std::vector<BarDefinition>{}), 32));
  for (int i = 1; i < PciBus::kDevices; ++i) {
    ASSERT_TRUE(bus.AddDevice(std::make_shared<FakePciDevice>(std::vector<BarDefinition>{})));
  }
  EXPECT_FALSE(bus.AddDevice(std::make_shared<FakePciDevice>(std::vector<BarDefinition>{})));

  PciBus small({0xc0000000, 0xc0002000});
  EXPECT_TRUE(small.AddDevice(
      std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x2000}})));
  auto full = small.AddDevice(
      std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x1000}}));
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message.find("does not fit"), std::string::npos) << full.error().message;
}

TEST_F(PciBusTest, BarAccessesRouteToTheDeviceRelativeToTheBar) {
  auto device = std::make_shared<FakePciDevice>(
      std::vector<BarDefinition>{{.index = 0, .size = 0x1000}, {.index = 2, .size = 0x2000}});
  ASSERT_TRUE(bus.AddDevice(device));
  const uint64_t bar0 = device->config.BarAddress(0);
  const uint64_t bar2 = device->config.BarAddress(2);
  EXPECT_EQ(MmioRead32(bar0 + 0x10), 0x10u);
  MmioWrite32(bar2 + 0x1ffc, 0xabcd);
  ASSERT_EQ(device->handlers[0].reads.size(), 1u);
  EXPECT_EQ(device->handlers[0].reads[0].offset, 0x10u);
  ASSERT_EQ(device->handlers[2].writes.size(), 1u);
  EXPECT_EQ(device->handlers[2].writes[0].offset, 0x1ffcu);
  EXPECT_EQ(device->handlers[2].writes[0].value, 0xabcdu);
  // Between and past BARs: nobody answers.
  EXPECT_EQ(MmioRead32(0xdffffffc), 0xffffffffu);
  EXPECT_EQ(bus.mmio_router()->unrouted_accesses(), 1u);
}

// Linux's sizing sequence (drivers/pci/probe.c __pci_read_base): decoding off, write all
// ones, read back, restore, decoding back on. The BAR is unmapped for the duration.
TEST_F(PciBusTest, GuestSizesAndMovesABar) {
  auto device = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x1000}});
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot);
  const uint64_t original = device->config.BarAddress(0);
  device->moves.clear();

  SetCommand(*slot, 0);
  Write32(ecam, EcamOffset(*slot, 0x10), 0xffffffff);
  EXPECT_EQ(Read32(ecam, EcamOffset(*slot, 0x10)), 0xfffff000u);
  EXPECT_EQ(MmioRead32(original), 0xffffffffu) << "decoding is off";
  Write32(ecam, EcamOffset(*slot, 0x10), 0xd0000000);
  SetCommand(*slot, 0x2);

  ASSERT_EQ(device->moves.size(), 2u);
  EXPECT_EQ(device->moves[0].old_address, original);
  EXPECT_EQ(device->moves[0].new_address, kBarUnmapped);
  EXPECT_EQ(device->moves[1].old_address, kBarUnmapped);
  EXPECT_EQ(device->moves[1].new_address, 0xd0000000u);
  EXPECT_EQ(MmioRead32(0xd0000008), 0x8u);
  EXPECT_EQ(MmioRead32(original + 8), 0xffffffffu) << "the old address no longer decodes";

  // Moving it while decoding stays on: one move, old to new.
  Write32(ecam, EcamOffset(*slot, 0x10), 0xd0001000);
  ASSERT_EQ(device->moves.size(), 3u);
  EXPECT_EQ(device->moves[2].old_address, 0xd0000000u);
  EXPECT_EQ(device->moves[2].new_address, 0xd0001000u);
  // Writing the same value again moves nothing; nor do writes elsewhere.
  Write32(ecam, EcamOffset(*slot, 0x10), 0xd0001000);
  Write32(ecam, EcamOffset(*slot, 0x3c), 0x0a);
  EXPECT_EQ(device->moves.size(), 3u);
}

TEST_F(PciBusTest, MemorySpaceDisableStopsRouting) {
  auto device = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x1000}});
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot);
  const uint64_t bar = device->config.BarAddress(0);
  SetCommand(*slot, 0x4);  // bus master only
  EXPECT_EQ(MmioRead32(bar), 0xffffffffu);
  MmioWrite32(bar, 1);
  EXPECT_TRUE(device->handlers[0].reads.empty());
  EXPECT_TRUE(device->handlers[0].writes.empty());
  EXPECT_EQ(bus.mmio_router()->unrouted_accesses(), 2u);
  SetCommand(*slot, 0x6);
  EXPECT_EQ(MmioRead32(bar + 4), 0x4u);
}

TEST_F(PciBusTest, Bar64MovesInTwoHalvesAndAbove4GiB) {
  auto device = std::make_shared<FakePciDevice>(
      std::vector<BarDefinition>{{.size = 0x4000, .type = BarType::kMemory64}});
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot);
  device->moves.clear();
  Write32(ecam, EcamOffset(*slot, 0x14), 0x1);  // upper half first: 0x1_c000_0000
  Write32(ecam, EcamOffset(*slot, 0x10), 0x0);  // then lower: 0x1_0000_0000
  ASSERT_EQ(device->moves.size(), 2u);
  EXPECT_EQ(device->moves[0].new_address, 0x1c0000000u);
  EXPECT_EQ(device->moves[1].new_address, 0x100000000u);
  EXPECT_EQ(MmioRead32(0xc0000000), 0xffffffffu) << "outside the router's window now";
}

TEST_F(PciBusTest, IoBarsRouteThroughTheIoRouter) {
  auto device = std::make_shared<FakePciDevice>(
      std::vector<BarDefinition>{{.index = 5, .size = 0x20, .type = BarType::kIo}});
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot);
  PciBarRouter& io = *bus.io_router();
  EXPECT_EQ(io.window_base(), 0xc000u);
  uint8_t byte = 0;
  io.Read(0x1f, std::span(&byte, 1));
  EXPECT_EQ(byte, 0x1f);
  SetCommand(*slot, 0);  // I/O Space off
  io.Read(0x1f, std::span(&byte, 1));
  EXPECT_EQ(byte, 0xff);
}

TEST_F(PciBusTest, UnusableAddressesUnmap) {
  auto device = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x1000}});
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot);
  Write32(ecam, EcamOffset(*slot, 0x10), 0);
  EXPECT_EQ(device->moves.back().new_address, kBarUnmapped) << "address 0";
  Write32(ecam, EcamOffset(*slot, 0x10), 0xffffffff);
  EXPECT_EQ(device->moves.back().new_address, 0xfffff000u) << "last page of 4 GiB fits";
  EXPECT_EQ(bus.mmio_router()->route_count(), 1u);
}

}  // namespace
}  // namespace vireo::pci
