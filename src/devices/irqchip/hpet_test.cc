#include "devices/irqchip/hpet.h"

#include <gtest/gtest.h>

#include <vector>

namespace vireo::irqchip {
namespace {

constexpr uint64_t kTickNs = Hpet::kPeriodFs / 1'000'000;  // 100 ns at 10 MHz
constexpr uint64_t kT0 = Hpet::kTimerBase;                 // timer 0's registers
constexpr uint64_t kT1 = Hpet::kTimerBase + Hpet::kTimerStride;
constexpr uint64_t kRoute20 = uint64_t{20} << Hpet::kTnRouteShift;

struct Edge {
  uint32_t line;
  bool legacy;
  bool level;
  bool operator==(const Edge&) const = default;
};

class HpetTest : public ::testing::Test {
 protected:
  HpetTest()
      : hpet_(clock_, {.set_irq =
                           [this](uint32_t line, bool legacy, bool level) {
                             edges_.push_back({line, legacy, level});
                           },
                       .legacy_changed = [this](bool on) { legacy_.push_back(on); }}) {}

  void Write32(uint64_t offset, uint32_t value) { hpet_.Write(offset, 4, value); }
  uint32_t Read32(uint64_t offset) { return static_cast<uint32_t>(hpet_.Read(offset, 4)); }
  // Rising edges on `line` so far.
  int Raises(uint32_t line, bool legacy = false) const {
    int n = 0;
    for (const Edge& e : edges_) n += e.line == line && e.legacy == legacy && e.level;
    return n;
  }
  void Advance(uint64_t ticks) {
    clock_.Advance(ticks * kTickNs);
    hpet_.Poll();
  }

  ManualClock clock_;
  std::vector<Edge> edges_;
  std::vector<bool> legacy_;
  Hpet hpet_;
};

TEST_F(HpetTest, CapabilitiesAdvertiseThreeTimers64BitLegacyAnd10MHz) {
  const uint64_t cap = hpet_.Read(Hpet::kCapId, 8);
  EXPECT_EQ(cap & 0xff, 1u);                          // REV_ID
  EXPECT_EQ((cap >> 8) & 0x1f, 2u);                   // NUM_TIM_CAP: timers - 1
  EXPECT_TRUE(cap & (1u << 13));                      // COUNT_SIZE_CAP
  EXPECT_TRUE(cap & (1u << 15));                      // LEG_RT_CAP
  EXPECT_EQ(cap >> 32, 100'000'000u);                 // 100 ns in fs
  EXPECT_EQ(Read32(Hpet::kCapId + 4), 100'000'000u);  // the high half alone
  const uint64_t t0 = hpet_.Read(kT0, 8);
  EXPECT_TRUE(t0 & Hpet::kTnPerIntCap);
  EXPECT_TRUE(t0 & Hpet::kTnSizeCap64);
  EXPECT_FALSE(t0 & (1u << 15));         // no FSB delivery
  EXPECT_EQ(t0 >> 32, Hpet::kRouteCap);  // IOAPIC pins 20-23
  EXPECT_EQ(hpet_.Read(Hpet::kConfig, 8), 0u);
}

TEST_F(HpetTest, CounterRunsOnlyWhileEnabledAndIsWritableWhileHalted) {
  clock_.Advance(1'000'000);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 0u);  // halted at reset
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  clock_.Advance(1000 * kTickNs + kTickNs - 1);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 1000u);
  Write32(Hpet::kConfig, 0);
  clock_.Advance(1'000'000);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 1000u);  // halted keeps its value
  // Halted: both halves writable, and counting resumes from the written value.
  Write32(Hpet::kCounter, 0xfffffff0);
  Write32(Hpet::kCounter + 4, 0x1);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 0x1'fffffff0u);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  clock_.Advance(0x20 * kTickNs);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 0x2'00000010u);
  EXPECT_EQ(Read32(Hpet::kCounter + 4), 2u);
  // While running, a counter write is ignored.
  Write32(Hpet::kCounter, 0);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 0x2'00000010u);
}

TEST_F(HpetTest, OneShotFiresOnceAtTheComparator) {
  hpet_.Write(kT0, 8, Hpet::kTnIntEnb | kRoute20);
  hpet_.Write(kT0 + Hpet::kTimerComparator, 8, 500);
  EXPECT_EQ(hpet_.NextEventNs(), UINT64_MAX);  // counter halted: nothing due
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  EXPECT_EQ(hpet_.NextEventNs(), clock_.NowNs() + 500 * kTickNs);
  Advance(499);
  EXPECT_EQ(Raises(20), 0);
  Advance(1);
  EXPECT_EQ(Raises(20), 1);
  EXPECT_EQ(edges_.back(), (Edge{20, false, false}));  // an edge: raised and lowered
  Advance(100000);
  EXPECT_EQ(Raises(20), 1);  // 64-bit one-shot: no second match
  EXPECT_EQ(hpet_.NextEventNs(), UINT64_MAX);
}

TEST_F(HpetTest, DisabledInterruptDoesNotFireAndRouteOutsideCapIsRefused) {
  hpet_.Write(kT0, 8, uint64_t{3} << Hpet::kTnRouteShift);  // pin 3: not allowed
  EXPECT_EQ(hpet_.Read(kT0, 8) & Hpet::kTnRouteMask, 0u);
  hpet_.Write(kT0, 8, uint64_t{22} << Hpet::kTnRouteShift);
  EXPECT_EQ(hpet_.Read(kT0, 8) & Hpet::kTnRouteMask, uint64_t{22} << Hpet::kTnRouteShift);
  hpet_.Write(kT0 + Hpet::kTimerComparator, 8, 10);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  Advance(20);
  EXPECT_TRUE(edges_.empty());
}

TEST_F(HpetTest, PeriodicFiresEveryPeriodAndCoalescesMissedOnes) {
  // Linux's sequence (hpet_clkevt_set_state_periodic): VAL_SET, comparator, then period.
  Write32(kT0, Hpet::kTnIntEnb | Hpet::kTnTypePeriodic | Hpet::kTnValSet | kRoute20);
  Write32(kT0 + Hpet::kTimerComparator, 1000);
  Write32(kT0 + Hpet::kTimerComparator, 1000);
  EXPECT_FALSE(hpet_.Read(kT0, 8) & Hpet::kTnValSet);  // cleared by the write
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  Advance(999);
  EXPECT_EQ(Raises(20), 0);
  Advance(1);
  EXPECT_EQ(Raises(20), 1);
  EXPECT_EQ(hpet_.Read(kT0 + Hpet::kTimerComparator, 8), 2000u);
  EXPECT_EQ(hpet_.NextEventNs(), clock_.NowNs() + 1000 * kTickNs);
  Advance(1000);
  EXPECT_EQ(Raises(20), 2);
  // Three and a half periods late: one interrupt, the comparator back on the grid ahead.
  Advance(3500);
  EXPECT_EQ(Raises(20), 3);
  EXPECT_EQ(hpet_.Read(kT0 + Hpet::kTimerComparator, 8), 6000u);
  Advance(500);
  EXPECT_EQ(Raises(20), 4);
}

TEST_F(HpetTest, ThirtyTwoBitModeWrapsAndIgnoresTheHighHalf) {
  Write32(Hpet::kCounter, 0xffffff00);
  hpet_.Write(kT1, 8, Hpet::kTnIntEnb | Hpet::kTn32Mode | (uint64_t{21} << Hpet::kTnRouteShift));
  hpet_.Write(kT1 + Hpet::kTimerComparator, 8, 0x7'00000010);  // high half dropped
  EXPECT_EQ(hpet_.Read(kT1 + Hpet::kTimerComparator, 8), 0x10u);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  Advance(0x10f);
  EXPECT_EQ(Raises(21), 0);
  Advance(1);  // the counter's low half wrapped to 0x10
  EXPECT_EQ(Raises(21), 1);
  EXPECT_EQ(hpet_.Read(Hpet::kCounter, 8), 0x1'00000010u);
  // The next match of a 32-bit one-shot is one whole wrap later.
  EXPECT_EQ(hpet_.NextEventNs(), clock_.NowNs() + (uint64_t{1} << 32) * kTickNs);
}

TEST_F(HpetTest, LevelInterruptHoldsUntilStatusIsCleared) {
  hpet_.Write(kT0, 8, Hpet::kTnIntEnb | Hpet::kTnIntTypeLevel | Hpet::kTnTypePeriodic | kRoute20);
  hpet_.Write(kT0 + Hpet::kTimerComparator, 8, 100);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  Advance(100);
  EXPECT_EQ(edges_, (std::vector<Edge>{{20, false, true}}));
  EXPECT_EQ(hpet_.Read(Hpet::kIntStatus, 8), 1u);
  Advance(100);  // still held: no second edge
  EXPECT_EQ(edges_.size(), 1u);
  Write32(Hpet::kIntStatus, 0b110);  // other bits: no effect
  EXPECT_EQ(hpet_.Read(Hpet::kIntStatus, 8), 1u);
  Write32(Hpet::kIntStatus, 1);
  EXPECT_EQ(hpet_.Read(Hpet::kIntStatus, 8), 0u);
  EXPECT_EQ(edges_.back(), (Edge{20, false, false}));
  Advance(100);
  EXPECT_EQ(Raises(20), 2);
  // Switching to edge mode lets the line go and clears the status.
  hpet_.Write(kT0, 8, Hpet::kTnIntEnb | Hpet::kTnTypePeriodic | kRoute20);
  EXPECT_EQ(hpet_.Read(Hpet::kIntStatus, 8), 0u);
  EXPECT_EQ(edges_.back(), (Edge{20, false, false}));
}

TEST_F(HpetTest, LegacyReplacementRoutesTimer0ToIrq0AndTimer1ToIrq8) {
  hpet_.Write(kT0, 8, Hpet::kTnIntEnb | kRoute20);
  hpet_.Write(kT0 + Hpet::kTimerComparator, 8, 10);
  hpet_.Write(kT1, 8, Hpet::kTnIntEnb | (uint64_t{21} << Hpet::kTnRouteShift));
  hpet_.Write(kT1 + Hpet::kTimerComparator, 8, 20);
  Write32(Hpet::kConfig, Hpet::kLegRtCnf);
  EXPECT_TRUE(legacy_.empty());  // not until the counter is enabled too
  Write32(Hpet::kConfig, Hpet::kEnableCnf | Hpet::kLegRtCnf);
  EXPECT_EQ(legacy_, (std::vector<bool>{true}));
  Advance(20);
  EXPECT_EQ(Raises(Hpet::kLegacyIrq0, true), 1);
  EXPECT_EQ(Raises(Hpet::kLegacyIrq8, true), 1);
  EXPECT_EQ(Raises(20) + Raises(21), 0);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  EXPECT_EQ(legacy_, (std::vector<bool>{true, false}));
  // Back on the route fields.
  hpet_.Write(kT0 + Hpet::kTimerComparator, 8, 30);
  Advance(10);
  EXPECT_EQ(Raises(20), 1);
}

TEST_F(HpetTest, HaltingStopsMatchesUntilReenabled) {
  hpet_.Write(kT0, 8, Hpet::kTnIntEnb | kRoute20);
  hpet_.Write(kT0 + Hpet::kTimerComparator, 8, 100);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  Advance(50);
  Write32(Hpet::kConfig, 0);
  Advance(1000);
  EXPECT_EQ(Raises(20), 0);
  Write32(Hpet::kConfig, Hpet::kEnableCnf);
  EXPECT_EQ(hpet_.NextEventNs(), clock_.NowNs() + 50 * kTickNs);
  Advance(50);
  EXPECT_EQ(Raises(20), 1);
}

}  // namespace
}  // namespace vireo::irqchip
