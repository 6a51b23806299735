// ConfigSpace against offsets and bit positions typed in from PCI Local Bus 3.0 §6.1-6.2
// and §6.7, not against the header's constants.
#include "devices/pci/config_space.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "devices/pci/fake_pci_device.h"

namespace vireo::pci {
namespace {

using testing::FakePciDevice;

const PciIds kIds{.vendor_id = 0x1af4,
                  .device_id = 0x1041,
                  .revision_id = 0x01,
                  .class_code = 0x02,
                  .subclass = 0x00,
                  .prog_if = 0x00,
                  .subsystem_vendor_id = 0x1af4,
                  .subsystem_id = 0x0001};

uint32_t Read(const ConfigSpace& config, uint64_t offset, size_t size) {
  uint8_t bytes[8] = {};
  config.Read(offset, std::span(bytes, size));
  uint32_t value = 0;
  for (size_t i = 0; i < size && i < 4; ++i) value |= uint32_t{bytes[i]} << (8 * i);
  return value;
}

void Write(ConfigSpace& config, uint64_t offset, size_t size, uint32_t value) {
  uint8_t bytes[4];
  for (size_t i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  config.Write(offset, std::span<const uint8_t>(bytes, size));
}

TEST(ConfigSpace, IdentityAtSpecOffsets) {
  const ConfigSpace config(kIds);
  EXPECT_EQ(Read(config, 0x00, 2), 0x1af4u);
  EXPECT_EQ(Read(config, 0x02, 2), 0x1041u);
  EXPECT_EQ(Read(config, 0x00, 4), 0x10411af4u);
  EXPECT_EQ(Read(config, 0x08, 4), 0x02000001u);  // class 02, sub-class 00, prog-if 00, rev 01
  EXPECT_EQ(Read(config, 0x2c, 4), 0x00011af4u);
  EXPECT_EQ(Read(config, 0x0e, 1), 0x00u);  // header type 0, single function
  EXPECT_EQ(Read(config, 0x34, 1), 0x00u);  // no capabilities
  EXPECT_EQ(Read(config, 0x06, 2) & (1u << 4), 0u);
}

TEST(ConfigSpace, ReadOnlyRegistersIgnoreWrites) {
  ConfigSpace config(kIds);
  for (uint16_t offset : {0x00, 0x08, 0x0e, 0x28, 0x2c, 0x30, 0x34, 0x3d, 0x3e}) {
    const uint32_t before = Read(config, offset, 4);
    Write(config, offset, 4, 0xffffffff);
    EXPECT_EQ(Read(config, offset, 4), before) << std::hex << offset;
  }
}

TEST(ConfigSpace, CommandImplementsOnlyItsBits) {
  ConfigSpace config(kIds);
  Write(config, 0x04, 2, 0xffff);
  // Bus Master, Parity Error Response, SERR# Enable, Interrupt Disable; no BARs, so no
  // I/O or Memory Space.
  EXPECT_EQ(Read(config, 0x04, 2), 0x0544u);
  ASSERT_TRUE(config.AddBar({.index = 0, .size = 0x1000, .type = BarType::kMemory32}));
  Write(config, 0x04, 2, 0xffff);
  EXPECT_EQ(Read(config, 0x04, 2), 0x0546u);
  ASSERT_TRUE(config.AddBar({.index = 1, .size = 0x20, .type = BarType::kIo}));
  Write(config, 0x04, 2, 0xffff);
  EXPECT_EQ(Read(config, 0x04, 2), 0x0547u);
  Write(config, 0x04, 2, 0);
  EXPECT_EQ(Read(config, 0x04, 2), 0u);
}

TEST(ConfigSpace, StatusErrorBitsAreWriteOneToClear) {
  ConfigSpace config(kIds);
  ASSERT_TRUE(config.AddCapability(capability_id::kVendorSpecific, 4));
  config.Set16(0x06, config.Get16(0x06) | 0xf900);  // the device signals every error
  Write(config, 0x06, 2, 0x0000);
  EXPECT_EQ(Read(config, 0x06, 2), 0xf910u) << "writing 0 changes nothing";
  Write(config, 0x06, 2, 0x2100);  // clear Received Master Abort and Master Data Parity Error
  EXPECT_EQ(Read(config, 0x06, 2), 0xd810u);
  Write(config, 0x06, 2, 0xffff);
  EXPECT_EQ(Read(config, 0x06, 2), 0x0010u) << "Capabilities List is read-only";
  // A dword write to Command/Status touches both with their own rules.
  Write(config, 0x04, 4, 0xffff0004);
  EXPECT_EQ(Read(config, 0x04, 4), 0x00100004u);
}

TEST(ConfigSpace, ScratchRegistersAreReadWrite) {
  ConfigSpace config(kIds);
  config.Set8(reg::kInterruptPin, 1);  // INTA#
  Write(config, 0x3c, 4, 0xffffff0b);
  EXPECT_EQ(Read(config, 0x3c, 1), 0x0bu);  // Interrupt Line
  EXPECT_EQ(Read(config, 0x3d, 1), 0x01u);  // Interrupt Pin stays
  Write(config, 0x0c, 1, 0x10);
  EXPECT_EQ(Read(config, 0x0c, 1), 0x10u);  // Cache Line Size
}

TEST(ConfigSpace, ExtendedSpaceReadsZeroAndPastItAllOnes) {
  ConfigSpace config(kIds);
  Write(config, 0x100, 4, 0x12345678);
  EXPECT_EQ(Read(config, 0x100, 4), 0u);
  EXPECT_EQ(Read(config, 0xffc, 4), 0u);
  EXPECT_EQ(Read(config, 0x1000, 4), 0xffffffffu);
  EXPECT_EQ(Read(config, 0xffe, 4), 0xffff0000u);     // straddles the end
  EXPECT_EQ(Read(config, ~uint64_t{0}, 2), 0xffffu);  // wraps: never indexes out of range
}

// §6.2.5.1: write all ones, read back, and the zero address bits give the size.
TEST(ConfigSpace, Memory32BarSizing) {
  ConfigSpace config(kIds);
  ASSERT_TRUE(config.AddBar({.index = 0, .size = 0x1000, .type = BarType::kMemory32}));
  ASSERT_TRUE(config.AddBar(
      {.index = 2, .size = 0x100000, .type = BarType::kMemory32, .prefetchable = true}));
  EXPECT_EQ(Read(config, 0x10, 4), 0x0u);
  Write(config, 0x10, 4, 0xffffffff);
  EXPECT_EQ(Read(config, 0x10, 4), 0xfffff000u);
  Write(config, 0x18, 4, 0xffffffff);
  EXPECT_EQ(Read(config, 0x18, 4), 0xfff00008u);  // prefetchable bit stays
  Write(config, 0x18, 4, 0xc0100000);
  EXPECT_EQ(Read(config, 0x18, 4), 0xc0100008u);
  EXPECT_EQ(config.BarAddress(2), 0xc0100000u);
  // BAR1 is not implemented: hardwired to zero, sizing reads 0.
  Write(config, 0x14, 4, 0xffffffff);
  EXPECT_EQ(Read(config, 0x14, 4), 0u);
  // A misaligned address keeps only the bits the size allows.
  Write(config, 0x10, 4, 0xc0000abc);
  EXPECT_EQ(config.BarAddress(0), 0xc0000000u);
  // Byte writes reach one byte of the BAR.
  Write(config, 0x13, 1, 0xd0);
  EXPECT_EQ(Read(config, 0x10, 4), 0xd0000000u);
}

TEST(ConfigSpace, Memory64BarSizing) {
  ConfigSpace config(kIds);
  ASSERT_TRUE(config.AddBar(
      {.index = 0, .size = 0x4000, .type = BarType::kMemory64, .prefetchable = true}));
  ASSERT_TRUE(config.AddBar({.index = 2, .size = uint64_t{8} << 30, .type = BarType::kMemory64}));
  EXPECT_EQ(Read(config, 0x10, 4), 0x0000000cu);  // 64-bit, prefetchable
  Write(config, 0x10, 4, 0xffffffff);
  Write(config, 0x14, 4, 0xffffffff);
  EXPECT_EQ(Read(config, 0x10, 4), 0xffffc00cu);
  EXPECT_EQ(Read(config, 0x14, 4), 0xffffffffu);
  // 8 GiB: the low dword has no address bits at all.
  Write(config, 0x18, 4, 0xffffffff);
  Write(config, 0x1c, 4, 0xffffffff);
  EXPECT_EQ(Read(config, 0x18, 4), 0x00000004u);
  EXPECT_EQ(Read(config, 0x1c, 4), 0xfffffffeu);
  Write(config, 0x10, 4, 0xc0004000);
  Write(config, 0x14, 4, 0x00000001);
  EXPECT_EQ(config.BarAddress(0), 0x1c0004000u);
}

TEST(ConfigSpace, IoBarSizing) {
  ConfigSpace config(kIds);
  ASSERT_TRUE(config.AddBar({.index = 4, .size = 0x20, .type = BarType::kIo}));
  EXPECT_EQ(Read(config, 0x20, 4), 0x1u);
  Write(config, 0x20, 4, 0xffffffff);
  EXPECT_EQ(Read(config, 0x20, 4), 0x0000ffe1u);  // 16-bit decode
  Write(config, 0x20, 4, 0xc040);
  EXPECT_EQ(config.BarAddress(4), 0xc040u);
}

TEST(ConfigSpace, AddBarRejectsBadDefinitions) {
  ConfigSpace config(kIds);
  ASSERT_TRUE(config.AddBar({.index = 1, .size = 0x1000, .type = BarType::kMemory64}));
  EXPECT_FALSE(config.AddBar({.index = 2, .size = 0x1000}));  // BAR2 is BAR1's upper half
  EXPECT_FALSE(config.AddBar({.index = 0, .size = 0x1000, .type = BarType::kMemory64}));
  EXPECT_FALSE(config.AddBar({.index = 5, .size = 0x1000, .type = BarType::kMemory64}));
  EXPECT_FALSE(config.AddBar({.index = 6, .size = 0x1000}));
  EXPECT_FALSE(config.AddBar({.index = -1, .size = 0x1000}));
  EXPECT_FALSE(config.AddBar({.index = 3, .size = 0x1800}));
  EXPECT_FALSE(config.AddBar({.index = 3, .size = 8}));
  EXPECT_FALSE(config.AddBar({.index = 3, .size = uint64_t{1} << 32}));
  EXPECT_FALSE(config.AddBar({.index = 3, .size = 512, .type = BarType::kIo}));
  EXPECT_FALSE(config.AddBar({.index = 3, .size = 16, .type = BarType::kIo, .prefetchable = true}));
  EXPECT_TRUE(config.AddBar({.index = 3, .size = uint64_t{1} << 31}));
  EXPECT_EQ(config.bars().size(), 2u);
}

// Walks the list the way a guest does: Status bit 4, pointer at 0x34, next at +1.
TEST(ConfigSpace, CapabilityChain) {
  ConfigSpace config(kIds);
  auto first = config.AddCapability(capability_id::kVendorSpecific, 16);
  auto second = config.AddCapability(capability_id::kMsix, 12);
  auto third = config.AddCapability(capability_id::kVendorSpecific, 5);
  ASSERT_TRUE(first && second && third);
  EXPECT_NE(Read(config, 0x06, 2) & (1u << 4), 0u);

  std::vector<std::pair<uint32_t, uint32_t>> chain;  // (offset, id)
  uint32_t at = Read(config, 0x34, 1);
  for (int hops = 0; at != 0 && hops < 48; ++hops) {
    EXPECT_EQ(at % 4, 0u);
    EXPECT_GE(at, 0x40u);
    chain.emplace_back(at, Read(config, at, 1));
    at = Read(config, at + 1, 1);
  }
  EXPECT_EQ(chain,
            (std::vector<std::pair<uint32_t, uint32_t>>{{0x40, 0x09}, {0x50, 0x11}, {0x5c, 0x09}}));
  EXPECT_EQ(FindCapability(config, capability_id::kMsix), 0x50);
  EXPECT_EQ(FindCapability(config, 0x05), 0);

  // Capability bodies are read-only until the device says otherwise; a virtio_pci_cap
  // sets its own bytes (cap_len at +2, cfg_type at +3) and a writable window.
  Write(config, 0x42, 2, 0xffff);
  EXPECT_EQ(Read(config, 0x42, 2), 0u);
  const uint8_t cap[] = {16, 1};
  config.SetBytes(*first + 2, cap);
  config.SetMasks(*first + 8, 4, 0xffffffff);
  Write(config, 0x40, 4, 0xffffffff);  // id and next stay put
  Write(config, 0x48, 4, 0xdeadbeef);
  EXPECT_EQ(Read(config, 0x40, 4), 0x01105009u);
  EXPECT_EQ(Read(config, 0x48, 4), 0xdeadbeefu);
}

TEST(ConfigSpace, CapabilitiesMustFit) {
  ConfigSpace config(kIds);
  ASSERT_TRUE(config.AddCapability(capability_id::kVendorSpecific, 0xb0));  // 0x40-0xef
  EXPECT_FALSE(config.AddCapability(capability_id::kVendorSpecific, 0x20));
  EXPECT_FALSE(config.AddCapability(capability_id::kVendorSpecific, 1));
  auto last = config.AddCapability(capability_id::kVendorSpecific, 0x10);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0xf0);
}

TEST(ConfigSpace, FindCapabilityEndsOnALoop) {
  ConfigSpace config(kIds);
  auto a = config.AddCapability(capability_id::kVendorSpecific, 4);
  auto b = config.AddCapability(capability_id::kVendorSpecific, 4);
  ASSERT_TRUE(a && b);
  config.Set8(*b + 1, *a);  // a -> b -> a -> ...
  EXPECT_EQ(FindCapability(config, capability_id::kMsix), 0);
}

// Rule 2: whatever the guest sends, the space stays in bounds and the ids stay put.
TEST(ConfigSpace, HostileAccessesNeverEscape) {
  FakePciDevice device({{.index = 0, .size = 0x1000}});
  uint8_t buffer[16];
  const uint64_t offsets[] = {
      0, 1, 3, 0xff, 0x100, 0xffd, 0x1000, 0xffffffff, ~uint64_t{0} - 2, ~uint64_t{0}};
  for (uint64_t offset : offsets) {
    for (size_t size : {0, 1, 2, 3, 4, 5, 8, 16}) {
      device.config.Read(offset, std::span(buffer, size));
      std::fill(buffer, buffer + size, 0xff);
      device.config.Write(offset, std::span<const uint8_t>(buffer, size));
    }
  }
  EXPECT_EQ(Read(device.config, 0, 4), 0x10411af4u);
}

}  // namespace
}  // namespace vireo::pci
