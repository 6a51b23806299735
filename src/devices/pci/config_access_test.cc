// Configuration Mechanism #1 (ports 0xCF8/0xCFC) and ECAM, driven the way a guest
// drives them, through one PciBus.
#include "devices/pci/config_access.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "devices/pci/fake_pci_device.h"
#include "devices/pci/host_bridge.h"

namespace vireo::pci {
namespace {

using testing::FakePciDevice;
using testing::Read32;
using testing::Write32;

constexpr BarWindow kMmio{0xc0000000, 0xe0000000};

// Port numbers as a guest writes them, relative to the device's base 0xcf8.
constexpr uint64_t kCf8 = 0;
constexpr uint64_t kCf9 = 1;
constexpr uint64_t kCfc = 4;

uint32_t ConfigAddress(int device, int function, int reg, int bus = 0) {
  return 0x80000000u | bus << 16 | device << 11 | function << 8 | (reg & 0xfc);
}

uint32_t ReadN(BusDevice& device, uint64_t offset, size_t size) {
  uint8_t bytes[4] = {};
  device.Read(offset, std::span(bytes, size));
  uint32_t value = 0;
  for (size_t i = 0; i < size; ++i) value |= uint32_t{bytes[i]} << (8 * i);
  return value;
}

void WriteN(BusDevice& device, uint64_t offset, size_t size, uint32_t value) {
  uint8_t bytes[4];
  for (size_t i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  device.Write(offset, std::span<const uint8_t>(bytes, size));
}

uint64_t EcamOffset(int device, int function, int reg) {
  return uint64_t(device) << 15 | uint64_t(function) << 12 | uint64_t(reg);
}

// A one-byte register standing in for the reset control device at 0xcf9.
class ByteRegister : public BusDevice {
 public:
  std::string_view name() const override { return "byte-register"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    ++reads;
    std::fill(data.begin(), data.end(), 0xff);
    if (offset == 0 && !data.empty()) data[0] = value;
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    ++writes;
    if (offset == 0 && !data.empty()) value = data[0];
  }
  uint8_t value = 0;
  int reads = 0;
  int writes = 0;
};

class ConfigAccessTest : public ::testing::Test {
 protected:
  ConfigAccessTest() : io(bus, reset), ecam(bus) {}

  PciBus bus{kMmio};
  std::shared_ptr<ByteRegister> reset = std::make_shared<ByteRegister>();
  PciConfigIo io;
  PciEcam ecam;
};

TEST_F(ConfigAccessTest, ConfigAddressLatchesOnlyDwordWrites) {
  Write32(io, kCf8, 0xffffffff);
  EXPECT_EQ(Read32(io, kCf8), 0x80fffffcu) << "bits 30:24 and 1:0 read 0";
  Write32(io, kCf8, ConfigAddress(3, 0, 0x10));
  EXPECT_EQ(io.config_address(), 0x80001810u);
  WriteN(io, kCf8, 1, 0x00);  // a byte write is ordinary I/O, not CONFIG_ADDRESS
  WriteN(io, kCf8 + 2, 2, 0x1234);
  EXPECT_EQ(Read32(io, kCf8), 0x80001810u);
  EXPECT_EQ(ReadN(io, kCf8, 2), 0xffffu);
}

// The host bridge's vendor/device dword is 0x0008_1b36; every width at every byte lane
// of CONFIG_DATA must see its slice of it.
TEST_F(ConfigAccessTest, VendorIdAtEveryWidthAndOffset) {
  const uint32_t ids = uint32_t{HostBridge::kDeviceId} << 16 | HostBridge::kVendorId;
  Write32(io, kCf8, ConfigAddress(0, 0, 0));
  EXPECT_EQ(Read32(io, kCfc), ids);
  for (uint64_t lane = 0; lane < 4; ++lane) {
    EXPECT_EQ(ReadN(io, kCfc + lane, 1), (ids >> (8 * lane)) & 0xff) << lane;
  }
  EXPECT_EQ(ReadN(io, kCfc + 0, 2), ids & 0xffff);
  EXPECT_EQ(ReadN(io, kCfc + 2, 2), ids >> 16);
  // Words crossing the dword, or a dword not at 0xcfc, are not config cycles.
  EXPECT_EQ(ReadN(io, kCfc + 3, 2) & 0xffff, 0xffffu);
  EXPECT_EQ(Read32(io, kCfc + 2), 0xffffffffu);
  // Class code of the host bridge: 06 00 00.
  Write32(io, kCf8, ConfigAddress(0, 0, 0x08));
  EXPECT_EQ(Read32(io, kCfc) >> 8, 0x060000u);
}

TEST_F(ConfigAccessTest, DisabledConfigAddressReadsOpenBus) {
  Write32(io, kCf8, ConfigAddress(0, 0, 0) & 0x7fffffff);
  EXPECT_EQ(Read32(io, kCfc), 0xffffffffu);
  Write32(io, kCfc, 0);  // dropped
  Write32(io, kCf8, ConfigAddress(0, 0, 0, /*bus=*/1));
  EXPECT_EQ(Read32(io, kCfc), 0xffffffffu) << "only bus 0 exists";
}

TEST_F(ConfigAccessTest, UnclaimedSlotsAndFunctionsReadAllOnes) {
  for (int slot = 1; slot < PciBus::kDevices; ++slot) {
    Write32(io, kCf8, ConfigAddress(slot, 0, 0));
    EXPECT_EQ(Read32(io, kCfc), 0xffffffffu) << slot;
    EXPECT_EQ(Read32(ecam, EcamOffset(slot, 0, 0)), 0xffffffffu) << slot;
  }
  for (int function = 1; function < 8; ++function) {
    Write32(io, kCf8, ConfigAddress(0, function, 0));
    EXPECT_EQ(Read32(io, kCfc), 0xffffffffu) << function;
    EXPECT_EQ(Read32(ecam, EcamOffset(0, function, 0)), 0xffffffffu) << function;
  }
  EXPECT_EQ(Read32(ecam, 1 << 20), 0xffffffffu) << "bus 1";
  EXPECT_EQ(bus.bad_config_accesses(), 0u) << "probing empty slots is not a mistake";
}

TEST_F(ConfigAccessTest, PortCf9GoesToTheResetControlRegister) {
  WriteN(io, kCf9, 1, 0x06);
  EXPECT_EQ(reset->value, 0x06);
  EXPECT_EQ(reset->writes, 1);
  EXPECT_EQ(ReadN(io, kCf9, 1), 0x06u);
  EXPECT_EQ(reset->reads, 1);
  // CONFIG_ADDRESS is unaffected by the byte at 0xcf9, and its dword writes do not reach
  // the reset register.
  Write32(io, kCf8, ConfigAddress(0, 0, 0));
  EXPECT_EQ(reset->writes, 1);
  EXPECT_EQ(io.config_address(), 0x80000000u);
  // Wider accesses at 0xcf9 are not the reset register either.
  WriteN(io, kCf9, 2, 0x0606);
  EXPECT_EQ(reset->writes, 1);

  PciConfigIo no_reset(bus, nullptr);
  EXPECT_EQ(ReadN(no_reset, kCf9, 1), 0xffu);
  WriteN(no_reset, kCf9, 1, 0x06);  // open bus: dropped
}

TEST_F(ConfigAccessTest, EcamSeesWhatCf8Sees) {
  auto device = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{
      {.index = 0, .size = 0x4000, .type = BarType::kMemory64, .prefetchable = true},
      {.index = 2, .size = 0x20, .type = BarType::kIo}});
  ASSERT_TRUE(device->config.AddCapability(capability_id::kVendorSpecific, 16));
  auto slot = bus.AddDevice(device);
  ASSERT_TRUE(slot) << slot.error().message;
  for (int s : {0, *slot}) {
    for (int reg = 0; reg < 256; reg += 4) {
      Write32(io, kCf8, ConfigAddress(s, 0, reg));
      EXPECT_EQ(Read32(io, kCfc), Read32(ecam, EcamOffset(s, 0, reg))) << s << " " << reg;
    }
  }
  // A write through ECAM is visible through 0xcfc, and the other way round.
  Write32(ecam, EcamOffset(*slot, 0, 0x3c), 0x0a);
  Write32(io, kCf8, ConfigAddress(*slot, 0, 0x3c));
  EXPECT_EQ(ReadN(io, kCfc, 1), 0x0au);
  WriteN(io, kCfc, 1, 0x0b);
  EXPECT_EQ(ReadN(ecam, EcamOffset(*slot, 0, 0x3c), 1), 0x0bu);
  // ECAM reaches the extended space, which reads 0 for a conventional function.
  EXPECT_EQ(Read32(ecam, EcamOffset(*slot, 0, 0x100)), 0u);
  EXPECT_EQ(Read32(ecam, EcamOffset(*slot, 0, 0xffc)), 0u);
}

TEST_F(ConfigAccessTest, HostileAccessesNeverCrash) {
  auto device = std::make_shared<FakePciDevice>(std::vector<BarDefinition>{{.size = 0x1000}});
  ASSERT_TRUE(bus.AddDevice(device));
  uint8_t buffer[16];
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{3}, uint64_t{5}, uint64_t{7},
                          uint64_t{8}, uint64_t{0xfff}, uint64_t{1} << 20, ~uint64_t{0}}) {
    for (size_t size : {0, 1, 2, 3, 4, 8, 16}) {
      Write32(io, kCf8, ConfigAddress(1, 0, 0xfc));
      io.Read(offset, std::span(buffer, size));
      ecam.Read(EcamOffset(1, 0, 0) + offset, std::span(buffer, size));
      ecam.Read(offset, std::span(buffer, size));
      std::fill(buffer, buffer + size, 0xff);
      ecam.Write(EcamOffset(1, 0, 0) + offset, std::span<const uint8_t>(buffer, size));
      io.Write(offset >= 4 ? offset : 4 + offset, std::span<const uint8_t>(buffer, size));
    }
  }
  // An 8-byte read of an ECAM register is refused, all ones, and counted.
  const uint64_t before = bus.bad_config_accesses();
  uint8_t qword[8];
  ecam.Read(EcamOffset(0, 0, 0), qword);
  EXPECT_EQ(LoadLe<uint64_t>(qword), ~uint64_t{0});
  EXPECT_EQ(bus.bad_config_accesses(), before + 1);
  EXPECT_EQ(Read32(ecam, EcamOffset(1, 0, 0)), 0x10411af4u);
}

}  // namespace
}  // namespace vireo::pci
