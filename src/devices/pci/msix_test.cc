// MSI-X against PCI Local Bus 3.0 §6.8.2: the capability a guest finds, the table and
// PBA it programs, and what a fake MsiSink receives.
#include "devices/pci/msix.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "base/bytes.h"

namespace vireo::pci {
namespace {

class FakeMsiSink : public MsiSink {
 public:
  void SendMsi(uint64_t address, uint32_t data) override { sent.emplace_back(address, data); }
  std::vector<std::pair<uint64_t, uint32_t>> sent;
};

constexpr uint16_t kVectors = 70;  // two PBA qwords
constexpr uint32_t kTableOffset = 0x2000;
constexpr uint32_t kPbaOffset = 0x3000;

class MsixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(config.AddBar({.index = 1, .size = 0x4000}));
    auto created = Msix::Create(config, kVectors, {1, kTableOffset}, {1, kPbaOffset}, sink);
    ASSERT_TRUE(created) << created.error().message;
    msix = std::move(*created);
    cap = msix->capability_offset();
  }

  // A guest's configuration write to Message Control, then the device's hook.
  void WriteControl(uint16_t value) {
    uint8_t bytes[2];
    StoreLe(bytes, 0, value);
    config.Write(cap + 2, bytes);
    msix->ConfigWritten(config);
  }
  uint32_t Table32(uint64_t offset) {
    uint8_t bytes[4];
    msix->TableRead(offset, bytes);
    return LoadLe<uint32_t>(bytes);
  }
  void SetTable32(uint64_t offset, uint32_t value) {
    uint8_t bytes[4];
    StoreLe(bytes, 0, value);
    msix->TableWrite(offset, bytes);
  }
  // Programs vector `v` with a recognisable message, leaving its mask as it was.
  void Program(uint16_t v) {
    SetTable32(16 * v + 0, 0xfee00000 + 0x1000 * v);
    SetTable32(16 * v + 4, 0);
    SetTable32(16 * v + 8, 0x40 + v);
  }
  void Unmask(uint16_t v) { SetTable32(16 * v + 12, 0); }
  void Mask(uint16_t v) { SetTable32(16 * v + 12, 1); }

  ConfigSpace config{PciIds{.vendor_id = 0x1af4, .device_id = 0x1041}};
  FakeMsiSink sink;
  std::unique_ptr<Msix> msix;
  uint8_t cap = 0;
};

TEST_F(MsixTest, CapabilityAsTheGuestFindsIt) {
  EXPECT_EQ(FindCapability(config, 0x11), cap);
  EXPECT_EQ(config.Get8(cap), 0x11);
  EXPECT_EQ(config.Get16(cap + 2), kVectors - 1) << "Table Size is N-1, disabled, unmasked";
  EXPECT_EQ(config.Get32(cap + 4), kTableOffset | 1) << "Table Offset | BIR";
  EXPECT_EQ(config.Get32(cap + 8), kPbaOffset | 1) << "PBA Offset | BIR";
  // Only Enable and Function Mask are writable.
  uint8_t ones[12];
  std::fill(std::begin(ones), std::end(ones), 0xff);
  config.Write(cap + 2, std::span<const uint8_t>(ones, 10));
  EXPECT_EQ(config.Get16(cap + 2), 0xc000 | (kVectors - 1));
  EXPECT_EQ(config.Get32(cap + 4), kTableOffset | 1);
  EXPECT_EQ(msix->table_size(), 16u * kVectors);
  EXPECT_EQ(msix->pba_size(), 16u);
}

TEST_F(MsixTest, CreateRejectsBadLayouts) {
  ConfigSpace other(PciIds{});
  ASSERT_TRUE(other.AddBar({.index = 0, .size = 0x1000}));
  ASSERT_TRUE(other.AddBar({.index = 2, .size = 0x20, .type = BarType::kIo}));
  EXPECT_FALSE(Msix::Create(other, 0, {0, 0}, {0, 0x800}, sink));
  EXPECT_FALSE(Msix::Create(other, 2049, {0, 0}, {0, 0x800}, sink));
  EXPECT_FALSE(Msix::Create(other, 4, {1, 0}, {0, 0x800}, sink)) << "no BAR1";
  EXPECT_FALSE(Msix::Create(other, 4, {2, 0}, {0, 0x800}, sink)) << "I/O BAR";
  EXPECT_FALSE(Msix::Create(other, 4, {0, 4}, {0, 0x800}, sink)) << "not QWORD-aligned";
  EXPECT_FALSE(Msix::Create(other, 256, {0, 0}, {0, 0x800}, sink)) << "overlaps the PBA";
  EXPECT_FALSE(Msix::Create(other, 4, {0, 0xff8}, {0, 0x800}, sink)) << "past the BAR";
  EXPECT_TRUE(Msix::Create(other, 4, {0, 0}, {0, 0x800}, sink));
}

TEST_F(MsixTest, VectorsStartMaskedAndNothingGoesOutWhileDisabled) {
  for (uint16_t v = 0; v < kVectors; ++v) EXPECT_TRUE(msix->vector_masked(v)) << v;
  EXPECT_EQ(Table32(12), 1u);
  Program(0);
  Unmask(0);
  EXPECT_EQ(msix->Notify(0), MsixNotify::kDisabled);
  EXPECT_FALSE(msix->pending(0));
  EXPECT_TRUE(sink.sent.empty());
}

TEST_F(MsixTest, UnmaskedVectorSendsItsMessage) {
  WriteControl(msix::kEnable);
  EXPECT_TRUE(msix->enabled());
  Program(3);
  Unmask(3);
  EXPECT_EQ(msix->Notify(3), MsixNotify::kSent);
  ASSERT_EQ(sink.sent.size(), 1u);
  EXPECT_EQ(sink.sent[0], std::make_pair(uint64_t{0xfee03000}, uint32_t{0x43}));
  // The upper address dword joins in.
  SetTable32(16 * 3 + 4, 0x1);
  msix->Notify(3);
  EXPECT_EQ(sink.sent.back().first, 0x1fee03000u);
}

TEST_F(MsixTest, MaskedVectorPendsAndUnmaskDeliversOnce) {
  WriteControl(msix::kEnable);
  Program(65);
  EXPECT_EQ(msix->Notify(65), MsixNotify::kPending);
  EXPECT_EQ(msix->Notify(65), MsixNotify::kPending);
  EXPECT_TRUE(msix->pending(65));
  uint8_t pba[8];
  msix->PbaRead(8, pba);  // second qword, bit 1
  EXPECT_EQ(LoadLe<uint64_t>(pba), 0x2u);
  EXPECT_TRUE(sink.sent.empty());
  // The guest reprograms the data while masked: the message uses what is there at unmask.
  SetTable32(16 * 65 + 8, 0x99);
  Unmask(65);
  ASSERT_EQ(sink.sent.size(), 1u);
  EXPECT_EQ(sink.sent[0].second, 0x99u);
  EXPECT_FALSE(msix->pending(65));
  Mask(65);
  Unmask(65);
  EXPECT_EQ(sink.sent.size(), 1u) << "nothing pending, nothing sent";
}

TEST_F(MsixTest, FunctionMaskHoldsEveryVector) {
  WriteControl(msix::kEnable | msix::kFunctionMask);
  for (uint16_t v : {0, 1, 69}) {
    Program(v);
    Unmask(v);
    EXPECT_EQ(msix->Notify(v), MsixNotify::kPending) << v;
  }
  Mask(1);  // vector 1 also masked on its own: stays pending after the function unmask
  EXPECT_TRUE(sink.sent.empty());
  WriteControl(msix::kEnable);
  ASSERT_EQ(sink.sent.size(), 2u);
  EXPECT_EQ(sink.sent[0].second, 0x40u);
  EXPECT_EQ(sink.sent[1].second, 0x40u + 69);
  EXPECT_TRUE(msix->pending(1));
  Unmask(1);
  EXPECT_EQ(sink.sent.size(), 3u);
}

TEST_F(MsixTest, BadVectorsAreRefused) {
  WriteControl(msix::kEnable);
  EXPECT_EQ(msix->Notify(kVectors), MsixNotify::kBadVector);
  EXPECT_EQ(msix->bad_accesses(), 1u);
  EXPECT_EQ(msix->Notify(msix::kNoVector), MsixNotify::kBadVector);
  EXPECT_EQ(msix->bad_accesses(), 1u) << "NO_VECTOR is a choice, not a mistake";
  EXPECT_TRUE(sink.sent.empty());
}

TEST_F(MsixTest, QwordAccessesAndReservedBits) {
  uint8_t qword[8];
  StoreLe<uint64_t>(qword, 0, 0x00000001fee00000);
  msix->TableWrite(16 * 2, qword);
  StoreLe<uint64_t>(qword, 0, 0xfffffffe00000055);  // data 0x55, control: reserved bits only
  msix->TableWrite(16 * 2 + 8, qword);
  msix->TableRead(16 * 2, qword);
  EXPECT_EQ(LoadLe<uint64_t>(qword), 0x00000001fee00000u);
  msix->TableRead(16 * 2 + 8, qword);
  EXPECT_EQ(LoadLe<uint64_t>(qword), 0x0000000000000055u) << "unmasked, reserved bits read 0";
}

TEST_F(MsixTest, OddAccessesAreIgnoredAndCounted) {
  Program(0);
  const uint32_t before = Table32(0);
  uint8_t bytes[16];
  std::fill(std::begin(bytes), std::end(bytes), 0x11);
  const std::pair<uint64_t, size_t> bad[] = {{0, 1},
                                             {1, 4},
                                             {2, 2},
                                             {4, 8},
                                             {0, 16},
                                             {0, 3},
                                             {16 * kVectors, 4},
                                             {~uint64_t{0}, 4},
                                             {16 * kVectors - 4, 8}};
  uint64_t expected = 0;
  for (auto [offset, size] : bad) {
    msix->TableWrite(offset, std::span<const uint8_t>(bytes, size));
    msix->TableRead(offset, std::span(bytes, size));
    for (size_t i = 0; i < size; ++i) EXPECT_EQ(bytes[i], 0xff) << offset << "/" << size;
    std::fill(std::begin(bytes), std::end(bytes), 0x11);
    expected += 2;
  }
  EXPECT_EQ(Table32(0), before);
  msix->PbaRead(16, std::span(bytes, 4));  // past the PBA
  msix->PbaWrite(0, std::span<const uint8_t>(bytes, 4));
  expected += 2;
  EXPECT_EQ(msix->bad_accesses(), expected);
  EXPECT_FALSE(msix->pending(0));
}

}  // namespace
}  // namespace vireo::pci
