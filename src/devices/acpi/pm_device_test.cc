#include "devices/acpi/pm_device.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <vector>

#include "arch/x86/acpi/acpi.h"
#include "devices/testing/fakes.h"

namespace vireo {
namespace {

class AcpiPmDeviceTest : public ::testing::Test {
 protected:
  void Write16(uint64_t offset, uint16_t value) {
    const std::array<uint8_t, 2> bytes = {static_cast<uint8_t>(value),
                                          static_cast<uint8_t>(value >> 8)};
    device_.Write(offset, bytes);
  }
  uint16_t Read16(uint64_t offset) {
    std::array<uint8_t, 2> bytes{};
    device_.Read(offset, bytes);
    return static_cast<uint16_t>(bytes[0] | (bytes[1] << 8));
  }
  static uint16_t SleepType(int type) {
    return static_cast<uint16_t>(type << AcpiPmDevice::kSlpTypShift);
  }

  testing::FakeVmControl control_;
  AcpiPmDevice device_{control_};
};

TEST_F(AcpiPmDeviceTest, S5PowersOffTheWayLinuxWritesIt) {
  // ACPICA's legacy sleep: SLP_TYP first, then SLP_TYP | SLP_EN.
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(x86::acpi::kS5SleepType));
  EXPECT_TRUE(control_.requests.empty());
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(x86::acpi::kS5SleepType) | AcpiPmDevice::kSlpEn);
  ASSERT_EQ(control_.requests.size(), 1u);
  EXPECT_EQ(control_.requests[0].kind, StopKind::kPowerOff);
  EXPECT_EQ(control_.requests[0].exit_status, 0);
}

TEST_F(AcpiPmDeviceTest, S5ByteWriteToTheHighHalfAlsoPowersOff) {
  const uint16_t value = SleepType(x86::acpi::kS5SleepType) | AcpiPmDevice::kSlpEn;
  const std::array<uint8_t, 1> high = {static_cast<uint8_t>(value >> 8)};
  device_.Write(AcpiPmDevice::kPm1Cnt + 1, high);
  ASSERT_EQ(control_.requests.size(), 1u);
  EXPECT_EQ(control_.requests[0].kind, StopKind::kPowerOff);
}

TEST_F(AcpiPmDeviceTest, OtherSleepTypesAreCountedAndIgnored) {
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(3) | AcpiPmDevice::kSlpEn);  // S3
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(1) | AcpiPmDevice::kSlpEn);  // S1
  EXPECT_TRUE(control_.requests.empty());
  EXPECT_EQ(device_.ignored_sleep_requests(), 2u);
  // SLP_TYP without SLP_EN is just a register write.
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(x86::acpi::kS5SleepType));
  EXPECT_TRUE(control_.requests.empty());
  EXPECT_EQ(device_.ignored_sleep_requests(), 2u);
}

TEST_F(AcpiPmDeviceTest, ControlReadsSciEnAndHidesWriteOnlyBits) {
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Cnt), AcpiPmDevice::kSciEn);
  Write16(AcpiPmDevice::kPm1Cnt, 0);  // the OS cannot turn ACPI mode off
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Cnt), AcpiPmDevice::kSciEn);
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(3) | AcpiPmDevice::kSlpEn | AcpiPmDevice::kGblRls);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Cnt), SleepType(3) | AcpiPmDevice::kSciEn);
}

TEST_F(AcpiPmDeviceTest, StatusBitsAreWriteOneToClear) {
  device_.RaiseStatus(AcpiPmDevice::kPwrbtnSts | AcpiPmDevice::kRtcSts | AcpiPmDevice::kWakSts);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Sts),
            AcpiPmDevice::kPwrbtnSts | AcpiPmDevice::kRtcSts | AcpiPmDevice::kWakSts);
  Write16(AcpiPmDevice::kPm1Sts, 0);  // zeros leave status alone
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Sts),
            AcpiPmDevice::kPwrbtnSts | AcpiPmDevice::kRtcSts | AcpiPmDevice::kWakSts);
  Write16(AcpiPmDevice::kPm1Sts, AcpiPmDevice::kRtcSts);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Sts), AcpiPmDevice::kPwrbtnSts | AcpiPmDevice::kWakSts);
  Write16(AcpiPmDevice::kPm1Sts, 0xffff);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1Sts), 0);
}

TEST_F(AcpiPmDeviceTest, EnableReadsBackDefinedBits) {
  Write16(AcpiPmDevice::kPm1En, AcpiPmDevice::kPwrbtnEn | AcpiPmDevice::kRtcEn);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1En), AcpiPmDevice::kPwrbtnEn | AcpiPmDevice::kRtcEn);
  Write16(AcpiPmDevice::kPm1En, 0xffff);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1En), AcpiPmDevice::kEnBits);
  // A byte write changes only its half.
  const std::array<uint8_t, 1> low = {0};
  device_.Write(AcpiPmDevice::kPm1En, low);
  EXPECT_EQ(Read16(AcpiPmDevice::kPm1En), AcpiPmDevice::kEnBits & 0xff00);
}

TEST_F(AcpiPmDeviceTest, DwordAccessSpansStatusAndEnable) {
  device_.RaiseStatus(AcpiPmDevice::kPwrbtnSts);
  // One 32-bit write: clear PWRBTN_STS and set PWRBTN_EN.
  const uint32_t value = AcpiPmDevice::kPwrbtnSts | (uint32_t{AcpiPmDevice::kPwrbtnEn} << 16);
  const std::array<uint8_t, 4> bytes = {
      static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
      static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
  device_.Write(AcpiPmDevice::kPm1Sts, bytes);
  std::array<uint8_t, 4> read{};
  device_.Read(AcpiPmDevice::kPm1Sts, read);
  EXPECT_EQ(read, (std::array<uint8_t, 4>{0, 0, 0, AcpiPmDevice::kPwrbtnEn >> 8}));
}

TEST_F(AcpiPmDeviceTest, OutOfRangeBytesReadOpenBusAndAreCounted) {
  std::array<uint8_t, 4> read{};
  device_.Read(4, read);  // PM1_CNT then two bytes past the block
  EXPECT_EQ(read, (std::array<uint8_t, 4>{AcpiPmDevice::kSciEn, 0, 0xff, 0xff}));
  EXPECT_EQ(device_.out_of_range_accesses(), 2u);
}

TEST_F(AcpiPmDeviceTest, StateRoundTripsAndRestoreValidates) {
  device_.RaiseStatus(AcpiPmDevice::kWakSts);
  Write16(AcpiPmDevice::kPm1En, AcpiPmDevice::kRtcEn);
  Write16(AcpiPmDevice::kPm1Cnt, SleepType(2));
  const AcpiPmState saved = device_.state();

  AcpiPmDevice restored(control_);
  ASSERT_TRUE(restored.RestoreState(saved));
  EXPECT_EQ(restored.state().pm1_sts, saved.pm1_sts);
  EXPECT_EQ(restored.state().pm1_en, saved.pm1_en);
  EXPECT_EQ(restored.state().pm1_cnt, saved.pm1_cnt);

  AcpiPmState bad;
  bad.pm1_cnt = AcpiPmDevice::kSlpEn;  // write-only: never part of the state
  EXPECT_FALSE(restored.RestoreState(bad));
}

}  // namespace
}  // namespace vireo

namespace vireo {
namespace {

// The power button as an OS sees it (§4.8.2.2.1): PWRBTN_STS with PWRBTN_EN raises the
// level-triggered SCI, which stays up until the OS writes 1 to PWRBTN_STS.
TEST(AcpiPmSciTest, PowerButtonRaisesSciOnlyWhenEnabledUntilCleared) {
  testing::FakeVmControl control;
  auto sci = std::make_shared<testing::FakeInterruptLine>();
  AcpiPmDevice device(control, sci);
  auto write16 = [&](uint64_t offset, uint16_t value) {
    const std::array<uint8_t, 2> bytes = {static_cast<uint8_t>(value),
                                          static_cast<uint8_t>(value >> 8)};
    device.Write(offset, bytes);
  };

  device.PressPowerButton();  // not enabled yet: status only
  EXPECT_TRUE(device.state().pm1_sts & AcpiPmDevice::kPwrbtnSts);
  EXPECT_TRUE(sci->changes.empty());
  EXPECT_FALSE(device.sci_asserted());

  write16(AcpiPmDevice::kPm1En, AcpiPmDevice::kPwrbtnEn);  // enabling a pending event raises it
  EXPECT_TRUE(sci->level);
  EXPECT_TRUE(device.sci_asserted());

  device.PressPowerButton();  // already asserted: no second edge
  EXPECT_EQ(sci->changes.size(), 1u);

  write16(AcpiPmDevice::kPm1Sts, AcpiPmDevice::kPwrbtnSts);  // the OS acknowledges
  EXPECT_FALSE(sci->level);
  EXPECT_EQ(sci->changes, (std::vector<bool>{true, false}));
  EXPECT_EQ(device.state().pm1_sts & AcpiPmDevice::kPwrbtnSts, 0);
  EXPECT_TRUE(control.requests.empty());  // the button alone never powers off
}

TEST(AcpiPmSciTest, RestoredStateDrivesTheLine) {
  testing::FakeVmControl control;
  auto sci = std::make_shared<testing::FakeInterruptLine>();
  AcpiPmDevice device(control, sci);
  ASSERT_TRUE(device.RestoreState({AcpiPmDevice::kPwrbtnSts, AcpiPmDevice::kPwrbtnEn, 0}));
  EXPECT_TRUE(sci->level);
}

}  // namespace
}  // namespace vireo
