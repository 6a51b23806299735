#include "devices/irqchip/local_apic.h"

#include <gtest/gtest.h>

#include <vector>

namespace vireo::irqchip {
namespace {

using L = LocalApic;

class LocalApicTest : public ::testing::Test {
 protected:
  LocalApicTest()
      : apic_(3, clock_,
              {.eoi_level = [this](uint8_t v) { eois_.push_back(v); },
               .send_ipi =
                   [this](const ApicMessage& m, L::Shorthand s, uint32_t) {
                     ipis_.push_back(m);
                     shorthands_.push_back(s);
                   },
               .nmi = [this] { ++nmis_; },
               .init = [this] { ++inits_; },
               .sipi = [this](uint8_t v) { sipis_.push_back(v); }}) {}
  void Enable() { apic_.Write(L::kSvr, 0x1ff); }

  ManualClock clock_;
  LocalApic apic_;
  std::vector<uint8_t> eois_, sipis_;
  std::vector<ApicMessage> ipis_;
  std::vector<L::Shorthand> shorthands_;
  int nmis_ = 0, inits_ = 0;
};

TEST_F(LocalApicTest, ResetStateIdVersionAndSoftwareDisable) {
  EXPECT_EQ(apic_.Read(L::kId), 3u << 24);
  EXPECT_EQ(apic_.Read(L::kVersion), 0x00060014u);
  EXPECT_EQ(apic_.Read(L::kSvr), 0xffu);
  EXPECT_EQ(apic_.Read(L::kLvtTimer), L::kLvtMasked);
  EXPECT_EQ(apic_.Read(L::kDfr), 0xffffffffu);
  // Software disabled: LVT masks cannot be cleared, and nothing is delivered.
  apic_.Write(L::kLvtTimer, 0x20);
  EXPECT_EQ(apic_.Read(L::kLvtTimer), 0x20u | L::kLvtMasked);
  apic_.SetIrr(0x40, false);
  EXPECT_EQ(apic_.PendingVector(), -1);
  Enable();
  EXPECT_EQ(apic_.PendingVector(), 0x40);
  apic_.Write(L::kLvtTimer, 0x20);
  EXPECT_EQ(apic_.Read(L::kLvtTimer), 0x20u);
  // Disabling again masks every LVT entry.
  apic_.Write(L::kSvr, 0xff);
  EXPECT_EQ(apic_.Read(L::kLvtTimer), 0x20u | L::kLvtMasked);
}

TEST_F(LocalApicTest, PriorityIrrIsrPprAndEoi) {
  Enable();
  apic_.SetIrr(0x35, false);
  apic_.SetIrr(0x51, true);
  EXPECT_EQ(apic_.Read(L::kIrr + 0x20), (1u << (0x51 - 64)));
  EXPECT_EQ(apic_.Read(L::kTmr + 0x20), (1u << (0x51 - 64)));
  EXPECT_EQ(apic_.PendingVector(), 0x51);
  EXPECT_EQ(apic_.Acknowledge(), 0x51);
  EXPECT_EQ(apic_.Read(L::kIsr + 0x20), (1u << (0x51 - 64)));
  EXPECT_EQ(apic_.Read(L::kPpr), 0x50u);
  // 0x35 is in a lower priority class than the one in service: it waits.
  EXPECT_EQ(apic_.PendingVector(), -1);
  // Same class as in service: still blocked (priority must be strictly higher).
  apic_.SetIrr(0x5f, false);
  EXPECT_EQ(apic_.PendingVector(), -1);
  apic_.Write(L::kEoi, 0);  // ends 0x51, a level vector: broadcast
  ASSERT_EQ(eois_.size(), 1u);
  EXPECT_EQ(eois_[0], 0x51);
  EXPECT_EQ(apic_.PendingVector(), 0x5f);
  EXPECT_EQ(apic_.Acknowledge(), 0x5f);
  apic_.Write(L::kEoi, 0);  // an edge vector: no broadcast
  EXPECT_EQ(eois_.size(), 1u);
  // TPR masks classes at or below it; PPR follows TPR.
  apic_.Write(L::kTpr, 0x40);
  EXPECT_EQ(apic_.Read(L::kPpr), 0x40u);
  EXPECT_EQ(apic_.PendingVector(), -1);
  apic_.Write(L::kTpr, 0x20);
  EXPECT_EQ(apic_.PendingVector(), 0x35);
  EXPECT_EQ(apic_.tpr(), 0x20);
  // EOI with nothing in service changes nothing.
  apic_.Acknowledge();
  apic_.Write(L::kEoi, 0);
  apic_.Write(L::kEoi, 0);
  EXPECT_EQ(apic_.Read(L::kIsr + 0x10), 0u);
}

TEST_F(LocalApicTest, IllegalVectorsLatchInEsrOnWrite) {
  Enable();
  apic_.Write(L::kLvtError, 0xfe);
  apic_.SetIrr(0x05, false);           // received illegal vector
  EXPECT_EQ(apic_.Read(L::kEsr), 0u);  // not latched until the ESR is written
  apic_.Write(L::kEsr, 0);
  EXPECT_EQ(apic_.Read(L::kEsr), L::kEsrReceiveIllegalVector);
  EXPECT_EQ(apic_.PendingVector(), 0xfe);  // the error LVT fired
  apic_.Write(L::kIcrLow, 0x4007);         // fixed, vector 7, self: send illegal vector
  apic_.Write(L::kEsr, 0);
  EXPECT_EQ(apic_.Read(L::kEsr), L::kEsrSendIllegalVector);
  apic_.Write(L::kEsr, 0);
  EXPECT_EQ(apic_.Read(L::kEsr), 0u);
}

TEST_F(LocalApicTest, OneShotTimerWithDivideAndCurrentCount) {
  Enable();
  apic_.Write(L::kTimerDivide, 0x3);  // divide by 16
  apic_.Write(L::kLvtTimer, 0x31);
  apic_.Write(L::kTimerInitial, 62500);  // 1 ms at 1 GHz / 16
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), clock_.NowNs() + 1'000'000);
  clock_.Advance(16 * 500);
  EXPECT_EQ(apic_.Read(L::kTimerCurrent), 62000u);
  clock_.Advance(1'000'000 - 16 * 500 - 1);
  apic_.PollTimer();
  EXPECT_EQ(apic_.PendingVector(), -1);
  clock_.Advance(1);
  apic_.PollTimer();
  EXPECT_EQ(apic_.PendingVector(), 0x31);
  EXPECT_EQ(apic_.Read(L::kTimerCurrent), 0u);
  apic_.Acknowledge();
  apic_.Write(L::kEoi, 0);
  clock_.Advance(10'000'000);
  apic_.PollTimer();  // one-shot: fired once only
  EXPECT_EQ(apic_.PendingVector(), -1);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), UINT64_MAX);
  // Divide-by-1 (0b1011) and by-128 (0b1010).
  apic_.Write(L::kTimerDivide, 0xb);
  apic_.Write(L::kTimerInitial, 100);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), clock_.NowNs() + 100);
  apic_.Write(L::kTimerDivide, 0xa);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), clock_.NowNs() + 12800);
  // Initial count 0 stops it.
  apic_.Write(L::kTimerInitial, 0);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), UINT64_MAX);
}

TEST_F(LocalApicTest, PeriodicTimerReloadsAndMaskedTimerCountsSilently) {
  Enable();
  apic_.Write(L::kTimerDivide, 0x0);  // divide by 2
  apic_.Write(L::kLvtTimer, 0x40 | (1 << 17));
  apic_.Write(L::kTimerInitial, 1000);  // 2 us
  const uint64_t start = clock_.NowNs();
  clock_.Advance(2000);
  apic_.PollTimer();
  EXPECT_EQ(apic_.Acknowledge(), 0x40);
  apic_.Write(L::kEoi, 0);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), start + 4000);
  clock_.Advance(500);
  EXPECT_EQ(apic_.Read(L::kTimerCurrent), 750u);
  // Three periods missed: one interrupt, next deadline on the period grid.
  clock_.Advance(6000);
  apic_.PollTimer();
  EXPECT_EQ(apic_.Acknowledge(), 0x40);
  apic_.Write(L::kEoi, 0);
  EXPECT_EQ(apic_.PendingVector(), -1);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), start + 10000);
  apic_.Write(L::kLvtTimer, 0x40 | (1 << 17) | L::kLvtMasked);
  clock_.Advance(2000);
  apic_.PollTimer();
  EXPECT_EQ(apic_.PendingVector(), -1);
}

// Linux's lapic_next_deadline / clockevents usage: LVT timer = vector | TSC-deadline mode,
// then WRMSR IA32_TSC_DEADLINE = rdtsc() + delta (SDM 11.5.4.1).
TEST_F(LocalApicTest, TscDeadlineTimerFiresAtTheDeadlineOnceAndClearsTheMsr) {
  Enable();
  apic_.set_tsc_deadline(5000);  // not in TSC-deadline mode: ignored, reads 0
  EXPECT_EQ(apic_.tsc_deadline(), 0u);
  apic_.Write(L::kLvtTimer, 0x33 | (2u << 17));
  EXPECT_EQ(apic_.Read(L::kLvtTimer), 0x33u | (2u << 17));
  EXPECT_EQ(apic_.NextTimerDeadlineNs(1000, 2'000'000'000), UINT64_MAX);  // not armed
  apic_.set_tsc_deadline(5000);
  EXPECT_EQ(apic_.tsc_deadline(), 5000u);
  // 4000 ticks at 2 GHz: 2 us to sleep.
  EXPECT_EQ(apic_.NextTimerDeadlineNs(1000, 2'000'000'000), clock_.NowNs() + 2000);
  // 3 ticks at 2 GHz is 1.5 ns: rounded up, never early.
  EXPECT_EQ(apic_.NextTimerDeadlineNs(4997, 2'000'000'000), clock_.NowNs() + 2);
  // Unknown TSC rate: no sleep bound from this timer.
  EXPECT_EQ(apic_.NextTimerDeadlineNs(1000, 0), UINT64_MAX);
  // Wall time does not matter in this mode, only the TSC.
  clock_.Advance(1'000'000'000);
  apic_.PollTimer(4999);
  EXPECT_EQ(apic_.PendingVector(), -1);
  apic_.PollTimer(5000);
  EXPECT_EQ(apic_.PendingVector(), 0x33);
  EXPECT_EQ(apic_.tsc_deadline(), 0u);  // fired: cleared and disarmed
  EXPECT_EQ(apic_.NextTimerDeadlineNs(6000, 2'000'000'000), UINT64_MAX);
  EXPECT_EQ(apic_.Acknowledge(), 0x33);
  apic_.Write(L::kEoi, 0);
  apic_.PollTimer(100000);
  EXPECT_EQ(apic_.PendingVector(), -1);
  // A deadline already passed fires at the next poll; its sleep bound is now.
  apic_.set_tsc_deadline(10);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(100000, 2'000'000'000), clock_.NowNs());
  apic_.PollTimer(100000);
  EXPECT_EQ(apic_.Acknowledge(), 0x33);
  apic_.Write(L::kEoi, 0);
  // Writing 0 disarms.
  apic_.set_tsc_deadline(200000);
  apic_.set_tsc_deadline(0);
  apic_.PollTimer(300000);
  EXPECT_EQ(apic_.PendingVector(), -1);
  // Masked: the deadline passes and clears without an interrupt.
  apic_.Write(L::kLvtTimer, 0x33 | (2u << 17) | L::kLvtMasked);
  apic_.set_tsc_deadline(400000);
  apic_.PollTimer(400000);
  EXPECT_EQ(apic_.PendingVector(), -1);
  EXPECT_EQ(apic_.tsc_deadline(), 0u);
}

TEST_F(LocalApicTest, TscDeadlineModeIgnoresTheCountAndModeSwitchesDisarm) {
  Enable();
  apic_.Write(L::kTimerDivide, 0xb);
  apic_.Write(L::kLvtTimer, 0x34 | (2u << 17));
  // 11.5.4.1: the initial-count register is ignored and the current count reads 0.
  apic_.Write(L::kTimerInitial, 100);
  EXPECT_EQ(apic_.Read(L::kTimerInitial), 0u);
  EXPECT_EQ(apic_.Read(L::kTimerCurrent), 0u);
  clock_.Advance(1000);
  apic_.PollTimer(0);
  EXPECT_EQ(apic_.PendingVector(), -1);
  // An armed deadline is dropped by a switch to one-shot mode...
  apic_.set_tsc_deadline(50);
  apic_.Write(L::kLvtTimer, 0x34);
  EXPECT_EQ(apic_.tsc_deadline(), 0u);
  apic_.PollTimer(100);
  EXPECT_EQ(apic_.PendingVector(), -1);
  // ...and a running count-down by a switch to TSC-deadline mode, and stays off after
  // switching back until a new initial count.
  apic_.Write(L::kTimerInitial, 100);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), clock_.NowNs() + 100);
  apic_.Write(L::kLvtTimer, 0x34 | (2u << 17));
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), UINT64_MAX);
  EXPECT_EQ(apic_.tsc_deadline(), 0u);  // not armed by the switch itself
  apic_.Write(L::kLvtTimer, 0x34);
  clock_.Advance(1000);
  apic_.PollTimer(0);
  EXPECT_EQ(apic_.PendingVector(), -1);
  EXPECT_EQ(apic_.Read(L::kTimerCurrent), 0u);
  // Changing only the vector or the mask keeps the deadline.
  apic_.Write(L::kLvtTimer, 0x34 | (2u << 17));
  apic_.set_tsc_deadline(500);
  apic_.Write(L::kLvtTimer, 0x35 | (2u << 17));
  EXPECT_EQ(apic_.tsc_deadline(), 500u);
  apic_.PollTimer(500);
  EXPECT_EQ(apic_.PendingVector(), 0x35);
  // INIT resets the mode and the deadline.
  apic_.Acknowledge();
  apic_.set_tsc_deadline(900);
  apic_.ResetForInit();
  EXPECT_EQ(apic_.tsc_deadline(), 0u);
  EXPECT_EQ(apic_.Read(L::kLvtTimer), L::kLvtMasked);
}

// x2APIC mode as Linux's x2apic_enable and the x2apic_cluster driver use it (SDM 11.12): ID
// through MSR 0x802, the cluster LDR derived from it, ICR as one 64-bit MSR, SELF IPI.
TEST_F(LocalApicTest, X2ApicMsrsIdLdrIcrAndSelfIpi) {
  uint64_t v = 0;
  EXPECT_FALSE(apic_.ReadMsr(0x802, &v)) << "xAPIC mode: the MSRs #GP";
  EXPECT_FALSE(apic_.WriteMsr(0x808, 0));
  apic_.SetX2Apic(true);
  ASSERT_TRUE(apic_.ReadMsr(0x802, &v));
  EXPECT_EQ(v, 3u);  // the whole 32-bit ID, not ID << 24
  ASSERT_TRUE(apic_.ReadMsr(0x80d, &v));
  EXPECT_EQ(v, 1u << 3);  // cluster 0, member bit 3 (11.12.10.2)
  ASSERT_TRUE(apic_.ReadMsr(0x803, &v));
  EXPECT_EQ(v, 0x00060014u);
  // Read-only, write-only and absent registers #GP.
  EXPECT_FALSE(apic_.WriteMsr(0x802, 7));           // ID
  EXPECT_FALSE(apic_.WriteMsr(0x80d, 0));           // LDR
  EXPECT_FALSE(apic_.ReadMsr(0x80b, &v));           // EOI
  EXPECT_FALSE(apic_.ReadMsr(0x83f, &v));           // SELF IPI
  EXPECT_FALSE(apic_.ReadMsr(0x80e, &v));           // no DFR
  EXPECT_FALSE(apic_.ReadMsr(0x831, &v));           // no ICR high half
  EXPECT_FALSE(apic_.WriteMsr(0x80b, 1));           // EOI takes only 0
  EXPECT_FALSE(apic_.WriteMsr(0x808, 1ull << 32));  // reserved upper half
  // Linux's bring-up: SVR enable, TPR, LVT timer, then work.
  ASSERT_TRUE(apic_.WriteMsr(0x80f, 0x1ff));
  EXPECT_TRUE(apic_.software_enabled());
  ASSERT_TRUE(apic_.WriteMsr(0x808, 0x20));
  EXPECT_EQ(apic_.tpr(), 0x20);
  ASSERT_TRUE(apic_.WriteMsr(0x808, 0));
  // SELF IPI: fixed, edge, to this APIC.
  ASSERT_TRUE(apic_.WriteMsr(0x83f, 0x51));
  EXPECT_EQ(apic_.PendingVector(), 0x51);
  ASSERT_TRUE(apic_.ReadMsr(0x820 + 0x51 / 32, &v));
  EXPECT_EQ(v, 1u << (0x51 % 32));
  EXPECT_EQ(apic_.Acknowledge(), 0x51);
  ASSERT_TRUE(apic_.WriteMsr(0x80b, 0));
  EXPECT_EQ(apic_.PendingVector(), -1);
  // ICR: destination in bits 63:32, sent by the one write, read back whole.
  ASSERT_TRUE(apic_.WriteMsr(0x830, (uint64_t{5} << 32) | 0x4061));
  ASSERT_EQ(ipis_.size(), 1u);
  EXPECT_EQ(ipis_[0].destination, 5u);
  EXPECT_EQ(ipis_[0].vector, 0x61);
  ASSERT_TRUE(apic_.ReadMsr(0x830, &v));
  EXPECT_EQ(v, (uint64_t{5} << 32) | 0x4061);
  // Destinations: physical 32-bit IDs; 0xffffffff and the 8-bit 0xff broadcast; logical in
  // cluster form (cluster 0, member bit 3).
  EXPECT_TRUE(apic_.MatchesDestination(false, 3));
  EXPECT_FALSE(apic_.MatchesDestination(false, 0x103));
  EXPECT_TRUE(apic_.MatchesDestination(false, 0xffffffff));
  EXPECT_TRUE(apic_.MatchesDestination(false, 0xff));
  EXPECT_TRUE(apic_.MatchesDestination(true, 0x0000000c));
  EXPECT_FALSE(apic_.MatchesDestination(true, 0x00010008));  // cluster 1
  EXPECT_FALSE(apic_.MatchesDestination(true, 0x00000004));
  // INIT keeps x2APIC mode and its LDR; leaving the mode (disable) drops the MSRs.
  apic_.ResetForInit();
  ASSERT_TRUE(apic_.ReadMsr(0x80d, &v));
  EXPECT_EQ(v, 1u << 3);
  apic_.SetX2Apic(false);
  EXPECT_FALSE(apic_.ReadMsr(0x802, &v));
  EXPECT_EQ(apic_.Read(L::kLdr), 0u);
}

TEST_F(LocalApicTest, IcrShorthandsModesAndDestinations) {
  Enable();
  apic_.Write(L::kIcrHigh, 0x07000000);
  apic_.Write(L::kIcrLow, 0x40);  // fixed, physical, no shorthand: to the bus
  ASSERT_EQ(ipis_.size(), 1u);
  EXPECT_EQ(ipis_[0].destination, 7u);
  EXPECT_EQ(shorthands_[0], L::Shorthand::kNone);
  EXPECT_EQ(apic_.Read(L::kIcrLow) & (1 << 12), 0u);  // delivery status idle
  apic_.Write(L::kIcrLow, 0x41 | (1 << 18));          // self
  EXPECT_EQ(ipis_.size(), 1u);
  EXPECT_EQ(apic_.PendingVector(), 0x41);
  apic_.Write(L::kIcrLow, 0x42 | (3 << 18));  // all but self
  EXPECT_EQ(shorthands_.back(), L::Shorthand::kAllButSelf);
  apic_.Write(L::kIcrLow, 0x42 | (2 << 18));
  EXPECT_EQ(shorthands_.back(), L::Shorthand::kAllIncludingSelf);
  // Modes accepted from the bus.
  apic_.Accept({.vector = 0, .delivery_mode = 4});
  apic_.Accept({.vector = 0, .delivery_mode = 5});
  apic_.Accept({.vector = 0x9a, .delivery_mode = 6});
  EXPECT_EQ(nmis_, 1);
  EXPECT_EQ(inits_, 1);
  ASSERT_EQ(sipis_.size(), 1u);
  EXPECT_EQ(sipis_[0], 0x9a);
  // Physical: own ID or broadcast. Logical flat: LDR bit overlap.
  EXPECT_TRUE(apic_.MatchesDestination(false, 3));
  EXPECT_TRUE(apic_.MatchesDestination(false, 0xff));
  EXPECT_FALSE(apic_.MatchesDestination(false, 4));
  apic_.Write(L::kLdr, 0x04000000);
  EXPECT_TRUE(apic_.MatchesDestination(true, 0x06));
  EXPECT_FALSE(apic_.MatchesDestination(true, 0x01));
  // Logical cluster: cluster 2, member bit 1.
  apic_.Write(L::kDfr, 0x0fffffff);
  apic_.Write(L::kLdr, 0x22000000);
  EXPECT_TRUE(apic_.MatchesDestination(true, 0x23));
  EXPECT_FALSE(apic_.MatchesDestination(true, 0x32));
  EXPECT_FALSE(apic_.MatchesDestination(true, 0x21));
}

// INIT (SDM 11.4.7.3): everything back to power-up except the APIC ID, so an AP that is
// re-initialised starts masked, software-disabled and with nothing pending or in service.
TEST_F(LocalApicTest, InitResetKeepsOnlyTheId) {
  Enable();
  apic_.Write(L::kTpr, 0x20);
  apic_.Write(L::kLdr, 0x04000000);
  apic_.Write(L::kLvtTimer, 0x30);
  apic_.Write(L::kTimerInitial, 1000);
  apic_.SetIrr(0x50, true);
  apic_.SetIrr(0x60, false);
  apic_.Acknowledge();  // 0x60 in service
  apic_.ResetForInit();
  EXPECT_EQ(apic_.Read(L::kId), 3u << 24);
  EXPECT_EQ(apic_.Read(L::kSvr), 0xffu);
  EXPECT_EQ(apic_.Read(L::kTpr), 0u);
  EXPECT_EQ(apic_.Read(L::kLdr), 0u);
  EXPECT_EQ(apic_.Read(L::kLvtTimer), L::kLvtMasked);
  EXPECT_EQ(apic_.Read(L::kTimerCurrent), 0u);
  EXPECT_EQ(apic_.NextTimerDeadlineNs(), UINT64_MAX);
  for (uint32_t i = 0; i < 8; ++i) {
    EXPECT_EQ(apic_.Read(L::kIrr + i * 0x10), 0u);
    EXPECT_EQ(apic_.Read(L::kIsr + i * 0x10), 0u);
    EXPECT_EQ(apic_.Read(L::kTmr + i * 0x10), 0u);
  }
  Enable();
  EXPECT_EQ(apic_.PendingVector(), -1);
}

TEST_F(LocalApicTest, UnalignedAndUnknownRegisters) {
  Enable();
  EXPECT_EQ(apic_.Read(L::kId + 4), 0u);
  apic_.Write(L::kTpr + 1, 0xff);
  EXPECT_EQ(apic_.Read(L::kTpr), 0u);
  apic_.Write(L::kId, 0x05000000);  // read-only here
  EXPECT_EQ(apic_.Read(L::kId), 3u << 24);
  apic_.Write(0x3f0, 1);  // reserved register
  apic_.Write(L::kEsr, 0);
  EXPECT_EQ(apic_.Read(L::kEsr), L::kEsrIllegalRegister);
}

}  // namespace
}  // namespace vireo::irqchip
