#include "devices/irqchip/ioapic.h"

#include <gtest/gtest.h>

#include <vector>

namespace vireo::irqchip {
namespace {

class IoapicTest : public ::testing::Test {
 protected:
  Ioapic ioapic_{[this](const ApicMessage& m) {
    sent_.push_back(m);
    return accept_;
  }};
  std::vector<ApicMessage> sent_;
  bool accept_ = true;

  void WriteReg(uint8_t reg, uint32_t v) {
    ioapic_.Write(Ioapic::kIoRegSel, reg);
    ioapic_.Write(Ioapic::kIoWin, v);
  }
  uint32_t ReadReg(uint8_t reg) {
    ioapic_.Write(Ioapic::kIoRegSel, reg);
    return ioapic_.Read(Ioapic::kIoWin);
  }
  void Program(int pin, uint32_t low, uint32_t high) {
    WriteReg(static_cast<uint8_t>(0x10 + 2 * pin + 1), high);
    WriteReg(static_cast<uint8_t>(0x10 + 2 * pin), low);
  }
};

TEST_F(IoapicTest, VersionIdAndResetMaskedEntries) {
  EXPECT_EQ(ReadReg(0x01), 0x00170011u);  // 24 entries, version 0x11
  WriteReg(0x00, 0x0f000000);
  EXPECT_EQ(ReadReg(0x00), 0x0f000000u);
  for (int pin = 0; pin < Ioapic::kPins; ++pin) {
    EXPECT_EQ(ReadReg(static_cast<uint8_t>(0x10 + 2 * pin)), Ioapic::kMasked);
  }
  // A masked pin delivers nothing; its edge is lost, not held.
  ioapic_.SetLevel(3, true);
  ioapic_.SetLevel(3, false);
  Program(3, 0x41, 0);
  EXPECT_TRUE(sent_.empty());
}

TEST_F(IoapicTest, EdgeDeliversOnRisingEdgeOnlyWithItsFields) {
  Program(2, 0x30 | (1 << 11) | (1 << 8), 0x05000000);  // logical, lowest priority
  ioapic_.SetLevel(2, true);
  ioapic_.SetLevel(2, true);  // still high: no new edge
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].vector, 0x30);
  EXPECT_EQ(sent_[0].delivery_mode, 1);
  EXPECT_TRUE(sent_[0].logical);
  EXPECT_FALSE(sent_[0].level);
  EXPECT_EQ(sent_[0].destination, 5u);
  ioapic_.SetLevel(2, false);
  ioapic_.SetLevel(2, true);
  EXPECT_EQ(sent_.size(), 2u);
  EXPECT_EQ(ReadReg(0x14) & Ioapic::kRemoteIrr, 0u);  // edge entries never hold Remote IRR
}

TEST_F(IoapicTest, LevelHoldsRemoteIrrUntilEoiAndRedeliversWhileAsserted) {
  Program(10, 0x50 | Ioapic::kLevel, 0);
  ioapic_.SetLevel(10, true);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_TRUE(sent_[0].level);
  EXPECT_NE(ReadReg(0x10 + 20) & Ioapic::kRemoteIrr, 0u);
  ioapic_.SetLevel(10, true);  // Remote IRR: no second message
  EXPECT_EQ(sent_.size(), 1u);
  ioapic_.Eoi(0x51);  // another vector: nothing
  EXPECT_EQ(sent_.size(), 1u);
  ioapic_.Eoi(0x50);  // line still up: delivered again
  EXPECT_EQ(sent_.size(), 2u);
  ioapic_.SetLevel(10, false);
  ioapic_.Eoi(0x50);
  EXPECT_EQ(sent_.size(), 2u);
  EXPECT_EQ(ReadReg(0x10 + 20) & Ioapic::kRemoteIrr, 0u);
  // The guest cannot write Remote IRR or delivery status.
  WriteReg(0x10 + 20, 0x50 | Ioapic::kLevel | Ioapic::kRemoteIrr | Ioapic::kDeliveryStatus);
  EXPECT_EQ(ReadReg(0x10 + 20), 0x50u | Ioapic::kLevel);
}

TEST_F(IoapicTest, UnmaskingAnAssertedLevelLineDeliversAndEoiRegisterWorks) {
  Program(9, 0x60 | Ioapic::kLevel | Ioapic::kMasked, 0);
  ioapic_.SetLevel(9, true);
  EXPECT_TRUE(sent_.empty());
  Program(9, 0x60 | Ioapic::kLevel, 0);
  ASSERT_EQ(sent_.size(), 1u);
  ioapic_.Write(Ioapic::kEoi, 0x60);  // the version 0x20 EOI register
  EXPECT_EQ(sent_.size(), 2u);
}

TEST_F(IoapicTest, RefusedLevelMessageDoesNotSetRemoteIrr) {
  accept_ = false;
  Program(4, 0x70 | Ioapic::kLevel, 0x01000000);
  ioapic_.SetLevel(4, true);
  EXPECT_EQ(ReadReg(0x18) & Ioapic::kRemoteIrr, 0u);
}

TEST_F(IoapicTest, OutOfRangePinsAndRegistersAreHarmless) {
  ioapic_.SetLevel(-1, true);
  ioapic_.SetLevel(24, true);
  WriteReg(0x10 + 48, 0x30);  // past the table
  EXPECT_EQ(ReadReg(0x10 + 48), 0u);
  EXPECT_EQ(ReadReg(0x7f), 0u);
  EXPECT_TRUE(sent_.empty());
}

}  // namespace
}  // namespace vireo::irqchip
