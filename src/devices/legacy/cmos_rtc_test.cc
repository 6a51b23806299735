#include "devices/legacy/cmos_rtc.h"

#include <gtest/gtest.h>

#include "devices/testing/fakes.h"

namespace vireo {
namespace {

using testing::ReadByte;
using testing::WriteByte;

constexpr int64_t kSecond = 1'000'000'000;
// 2024-02-29 13:45:07 UTC, a Thursday.
constexpr int64_t kLeapDay = 1709214307;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

class CmosRtcTest : public ::testing::Test {
 protected:
  CmosRtcTest() : rtc_(256 * kMiB, 0, [this] { return now_ns_; }) {}

  uint8_t Get(uint8_t index) {
    WriteByte(rtc_, 0, index);
    return ReadByte(rtc_, 1);
  }
  void Set(uint8_t index, uint8_t value) {
    WriteByte(rtc_, 0, index);
    WriteByte(rtc_, 1, value);
  }

  int64_t now_ns_ = kLeapDay * kSecond + kSecond / 2;
  CmosRtc rtc_;
};

TEST_F(CmosRtcTest, PowerOnDefaultsAreBcd24Hour) {
  EXPECT_EQ(Get(0x0a), 0x26);
  EXPECT_EQ(Get(0x0b), 0x02);
  EXPECT_EQ(Get(0x0d), 0x80);  // VRT
}

TEST_F(CmosRtcTest, ReadsTimeInBcd) {
  EXPECT_EQ(Get(0x00), 0x07);
  EXPECT_EQ(Get(0x02), 0x45);
  EXPECT_EQ(Get(0x04), 0x13);
  EXPECT_EQ(Get(0x06), 0x05);  // Thursday, with Sunday = 1
  EXPECT_EQ(Get(0x07), 0x29);
  EXPECT_EQ(Get(0x08), 0x02);
  EXPECT_EQ(Get(0x09), 0x24);
  EXPECT_EQ(Get(0x32), 0x20);
}

TEST_F(CmosRtcTest, ReadsTimeInBinary) {
  Set(0x0b, 0x06);  // DM = binary, 24-hour
  EXPECT_EQ(Get(0x00), 7);
  EXPECT_EQ(Get(0x02), 45);
  EXPECT_EQ(Get(0x04), 13);
  EXPECT_EQ(Get(0x07), 29);
  EXPECT_EQ(Get(0x09), 24);
  EXPECT_EQ(Get(0x32), 20);
}

TEST_F(CmosRtcTest, TwelveHourModeMarksPm) {
  Set(0x0b, 0x00);                                       // BCD, 12-hour
  EXPECT_EQ(Get(0x04), 0x81);                            // 1 PM
  now_ns_ = (kLeapDay - 13 * 3600 - 15 * 60) * kSecond;  // 00:30:07
  EXPECT_EQ(Get(0x04), 0x12);                            // 12 AM
  now_ns_ += 12 * 3600 * kSecond;                        // 12:30:07
  EXPECT_EQ(Get(0x04), 0x92);                            // 12 PM
  Set(0x0b, 0x04);                                       // binary, 12-hour
  EXPECT_EQ(Get(0x04), 0x80 | 12);
}

TEST_F(CmosRtcTest, NmiBitIsNotPartOfTheIndex) {
  Set(0x80 | 0x40, 0x5a);
  EXPECT_TRUE(rtc_.nmi_disabled());
  EXPECT_EQ(Get(0x40), 0x5a);
  EXPECT_FALSE(rtc_.nmi_disabled());
  WriteByte(rtc_, 0, 0x80 | 0x00);
  EXPECT_EQ(ReadByte(rtc_, 1), 0x07);  // seconds
  EXPECT_EQ(ReadByte(rtc_, 0), 0xff);  // the index port is write-only
}

TEST_F(CmosRtcTest, MemorySizesFor256MiB) {
  EXPECT_EQ(Get(0x15), 0x80);  // 640 KiB
  EXPECT_EQ(Get(0x16), 0x02);
  EXPECT_EQ(Get(0x17), 0xff);  // 255 MiB above 1 MiB, capped at 0xffff KiB
  EXPECT_EQ(Get(0x18), 0xff);
  EXPECT_EQ(Get(0x30), 0xff);
  EXPECT_EQ(Get(0x31), 0xff);
  EXPECT_EQ(Get(0x34), 0x00);  // (256 - 16) MiB / 64 KiB = 0x0f00
  EXPECT_EQ(Get(0x35), 0x0f);
  EXPECT_EQ(Get(0x5b), 0);
  EXPECT_EQ(Get(0x5c), 0);
  EXPECT_EQ(Get(0x5d), 0);
}

TEST(CmosRtcMemory, SizesFor6GiBSplitAroundTheHole) {
  CmosRtc rtc(3 * kGiB, 3 * kGiB, [] { return int64_t{0}; });
  auto get = [&](uint8_t index) {
    WriteByte(rtc, 0, index);
    return ReadByte(rtc, 1);
  };
  EXPECT_EQ(get(0x17), 0xff);
  EXPECT_EQ(get(0x34), 0x00);  // (3072 - 16) MiB / 64 KiB = 0xbf00
  EXPECT_EQ(get(0x35), 0xbf);
  EXPECT_EQ(get(0x5b), 0x00);  // 3 GiB / 64 KiB = 0x00c000
  EXPECT_EQ(get(0x5c), 0xc0);
  EXPECT_EQ(get(0x5d), 0x00);
}

TEST(CmosRtcMemory, SmallGuestHasNoExtendedMemoryAboveSixteenMiB) {
  CmosRtc rtc(8 * kMiB, 0, [] { return int64_t{0}; });
  auto get = [&](uint8_t index) {
    WriteByte(rtc, 0, index);
    return ReadByte(rtc, 1);
  };
  EXPECT_EQ(get(0x17) | get(0x18) << 8, 7 * 1024);
  EXPECT_EQ(get(0x34), 0);
  EXPECT_EQ(get(0x35), 0);
}

TEST_F(CmosRtcTest, NvramPersistsAcrossReset) {
  Set(0x40, 0xab);
  Set(0x7f, 0xcd);
  Set(0x0b, 0x02 | 0x04 | 0x40 | 0x10);  // binary, PIE, UIE
  Set(0x15, 0x00);                       // guest scribbles on a memory-size byte
  rtc_.Reset();
  EXPECT_EQ(Get(0x40), 0xab);
  EXPECT_EQ(Get(0x7f), 0xcd);
  EXPECT_EQ(Get(0x0b), 0x06);  // interrupt enables cleared, data format kept
  EXPECT_EQ(Get(0x15), 0x80);  // machine description rewritten
}

TEST_F(CmosRtcTest, WritingAFieldMovesTheOffset) {
  Set(0x04, 0x15);  // 13h -> 15h
  EXPECT_EQ(rtc_.offset_seconds(), 2 * 3600);
  EXPECT_EQ(Get(0x04), 0x15);
  EXPECT_EQ(Get(0x02), 0x45);
  now_ns_ += 3 * kSecond;
  EXPECT_EQ(Get(0x00), 0x10);
}

TEST_F(CmosRtcTest, SetBitFreezesThenCommitsTheWholeDate) {
  Set(0x0b, 0x82);  // SET, BCD, 24-hour
  EXPECT_EQ(Get(0x00), 0x07);
  now_ns_ += 5 * kSecond;
  EXPECT_EQ(Get(0x00), 0x07);  // frozen while SET
  // 2030-01-01 00:00:00
  Set(0x00, 0x00);
  Set(0x02, 0x00);
  Set(0x04, 0x00);
  Set(0x07, 0x01);
  Set(0x08, 0x01);
  Set(0x09, 0x30);
  Set(0x32, 0x20);
  Set(0x0b, 0x02);
  EXPECT_EQ(rtc_.offset_seconds(), 1893456000 - (kLeapDay + 5));
  now_ns_ += 61 * kSecond;
  EXPECT_EQ(Get(0x00), 0x01);
  EXPECT_EQ(Get(0x02), 0x01);
  EXPECT_EQ(Get(0x09), 0x30);
  EXPECT_EQ(Get(0x06), 0x03);  // 2030-01-01 is a Tuesday
}

TEST_F(CmosRtcTest, InvalidTimeIsCountedAndIgnored) {
  Set(0x08, 0x13);  // month 13
  Set(0x07, 0x30);  // 30 February
  Set(0x00, 0x5a);  // not BCD
  EXPECT_EQ(rtc_.invalid_time_writes(), 3u);
  EXPECT_EQ(rtc_.offset_seconds(), 0);
  EXPECT_EQ(Get(0x08), 0x02);
}

TEST_F(CmosRtcTest, UipIsSetOnlyJustBeforeTheSecondTicks) {
  EXPECT_EQ(Get(0x0a) & 0x80, 0);
  now_ns_ = (kLeapDay + 1) * kSecond - 100'000;  // 100 us before the update
  EXPECT_EQ(Get(0x0a) & 0x80, 0x80);
  EXPECT_EQ(Get(0x00), 0x07);
  now_ns_ = (kLeapDay + 1) * kSecond - 300'000;  // 300 us before
  EXPECT_EQ(Get(0x0a) & 0x80, 0);
  now_ns_ = (kLeapDay + 1) * kSecond;
  EXPECT_EQ(Get(0x00), 0x08);
  now_ns_ = (kLeapDay + 2) * kSecond - 1;
  Set(0x0b, 0x82);  // SET: no updates, no UIP
  EXPECT_EQ(Get(0x0a) & 0x80, 0);
  Set(0x0a, 0xa6);  // UIP is read-only
  Set(0x0b, 0x02);
  now_ns_ = (kLeapDay + 2) * kSecond;
  EXPECT_EQ(Get(0x0a), 0x26);
}

TEST_F(CmosRtcTest, RegisterCReportsUpdatesAndClearsOnRead) {
  EXPECT_EQ(Get(0x0c), 0x00);
  now_ns_ += kSecond;
  EXPECT_EQ(Get(0x0c), 0x10);  // UF
  EXPECT_EQ(Get(0x0c), 0x00);
  Set(0x0c, 0xff);  // read-only
  Set(0x0d, 0x00);
  EXPECT_EQ(Get(0x0c), 0x00);
  EXPECT_EQ(Get(0x0d), 0x80);
}

// Snapshots: the RAM, the index and the guest clock's offset carry over; a bad index is refused.
TEST_F(CmosRtcTest, StateRestoresIntoAFreshChip) {
  Set(0x40, 0x99);           // NVRAM
  Set(0x04, 0x20);           // hours: the guest moves its clock to 20:45 (from 13:45)
  WriteByte(rtc_, 0, 0x41);  // leave the index on another byte
  const CmosRtcState saved = rtc_.state();
  CmosRtc copy(256 * kMiB, 0, [this] { return now_ns_; });
  ASSERT_TRUE(copy.RestoreState(saved));
  EXPECT_EQ(copy.offset_seconds(), rtc_.offset_seconds());
  WriteByte(copy, 0, 0x40);
  EXPECT_EQ(ReadByte(copy, 1), 0x99);
  WriteByte(copy, 0, 0x04);
  EXPECT_EQ(ReadByte(copy, 1), 0x20);
  CmosRtcState bad = saved;
  bad.index = 200;
  EXPECT_FALSE(copy.RestoreState(bad));
}

}  // namespace
}  // namespace vireo
