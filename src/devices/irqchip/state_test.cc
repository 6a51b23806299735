// Snapshot state of the interrupt-controller models: each is saved, restored into a fresh
// model (on a clock at another time, as a restore in another process sees), and must then
// behave as the original would have: pending timers fire after the same delay, an
// interrupt in service or waiting for its EOI still blocks, a half-finished register access
// completes.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "devices/irqchip/hpet.h"
#include "devices/irqchip/ioapic.h"
#include "devices/irqchip/local_apic.h"
#include "devices/irqchip/pic.h"
#include "devices/irqchip/pit.h"
#include "devices/testing/fakes.h"

namespace vireo::irqchip {
namespace {

using L = LocalApic;
using Page = std::array<uint8_t, L::kPageSize>;

constexpr uint64_t kLaterNs = 77'000'000'000;  // the restoring side's clock: another time line

struct ApicHarness {
  explicit ApicHarness(uint32_t id = 1)
      : apic(id, clock, {.eoi_level = [this](uint8_t v) { eois.push_back(v); }}) {}
  ManualClock clock;
  std::vector<uint8_t> eois;
  LocalApic apic;
};

Page Save(const LocalApic& apic) {
  Page page{};
  apic.SaveState(page);
  return page;
}

TEST(LocalApicState, OneShotTimerFiresAfterTheSameDelayOnTheRestoredApic) {
  ApicHarness a;
  a.apic.Write(L::kSvr, 0x1ff);
  a.apic.Write(L::kTimerDivide, 0x0);  // divide by 2
  a.apic.Write(L::kLvtTimer, 0x31);    // one-shot, vector 0x31
  a.apic.Write(L::kTimerInitial, 1000);
  a.clock.Advance(600);  // 300 of the 1000 ticks gone
  const Page page = Save(a.apic);

  ApicHarness b;
  b.clock.Set(kLaterNs);
  ASSERT_TRUE(b.apic.RestoreState(page));
  EXPECT_EQ(b.apic.Read(L::kTimerCurrent), 700u);
  EXPECT_EQ(b.apic.Read(L::kTimerInitial), 1000u);
  EXPECT_EQ(b.apic.Read(L::kTimerDivide), 0u);
  EXPECT_EQ(b.apic.NextTimerDeadlineNs(), kLaterNs + 1400);
  b.clock.Advance(1399);
  b.apic.PollTimer();
  EXPECT_EQ(b.apic.PendingVector(), -1);
  b.clock.Advance(1);
  b.apic.PollTimer();
  EXPECT_EQ(b.apic.PendingVector(), 0x31);
  // The original, left running, fires at the same offset.
  a.clock.Advance(1400);
  a.apic.PollTimer();
  EXPECT_EQ(a.apic.PendingVector(), 0x31);
}

TEST(LocalApicState, PeriodicTimerKeepsItsPhaseAndAnExpiredOneShotStaysQuiet) {
  ApicHarness a;
  a.apic.Write(L::kSvr, 0x1ff);
  a.apic.Write(L::kTimerDivide, 0xb);             // divide by 1
  a.apic.Write(L::kLvtTimer, 0x40 | (1u << 17));  // periodic
  a.apic.Write(L::kTimerInitial, 500);
  a.clock.Advance(1200);  // two periods and 200 ns
  ApicHarness b;
  b.clock.Set(kLaterNs);
  ASSERT_TRUE(b.apic.RestoreState(Save(a.apic)));
  EXPECT_EQ(b.apic.NextTimerDeadlineNs(), kLaterNs + 300);
  b.clock.Advance(300 + 500);
  b.apic.PollTimer();
  EXPECT_EQ(b.apic.PendingVector(), 0x40);

  ApicHarness c;
  c.apic.Write(L::kSvr, 0x1ff);
  c.apic.Write(L::kTimerDivide, 0xb);
  c.apic.Write(L::kLvtTimer, 0x41);
  c.apic.Write(L::kTimerInitial, 100);
  c.clock.Advance(150);
  c.apic.PollTimer();
  ASSERT_EQ(c.apic.Acknowledge(), 0x41);
  c.apic.Write(L::kEoi, 0);
  ApicHarness d;
  ASSERT_TRUE(d.apic.RestoreState(Save(c.apic)));
  EXPECT_EQ(d.apic.NextTimerDeadlineNs(), UINT64_MAX);
  d.clock.Advance(1'000'000);
  d.apic.PollTimer();
  EXPECT_EQ(d.apic.PendingVector(), -1);
}

TEST(LocalApicState, InServiceLevelVectorStillBlocksAndItsEoiReachesTheIoapic) {
  ApicHarness a;
  a.apic.Write(L::kSvr, 0x1ff);
  a.apic.Write(L::kTpr, 0x20);
  a.apic.Write(L::kLdr, 0x04000000);
  a.apic.Write(L::kDfr, 0x0fffffff);  // cluster model
  a.apic.Write(L::kLvtLint0, 0x700);
  a.apic.Write(L::kLvtError, 0xfe);
  a.apic.Write(L::kIcrHigh, 0x02000000);
  a.apic.SetIrr(0x50, true);
  ASSERT_EQ(a.apic.Acknowledge(), 0x50);
  a.apic.SetIrr(0x45, false);
  a.apic.SetIrr(0x61, false);
  const Page page = Save(a.apic);

  ApicHarness b;
  ASSERT_TRUE(b.apic.RestoreState(page));
  for (uint32_t reg : {L::kTpr, L::kPpr, L::kLdr, L::kDfr, L::kSvr, L::kLvtLint0, L::kLvtError,
                       L::kLvtTimer, L::kIcrHigh, L::kIsr + 0x20, L::kTmr + 0x20, L::kIrr + 0x20,
                       L::kIrr + 0x40, L::kVersion, L::kId}) {
    EXPECT_EQ(b.apic.Read(reg), a.apic.Read(reg)) << "register " << std::hex << reg;
  }
  EXPECT_TRUE(b.apic.MatchesDestination(true, 0x04));
  // 0x61 beats the in-service 0x50; 0x45 waits behind it.
  EXPECT_EQ(b.apic.Acknowledge(), 0x61);
  b.apic.Write(L::kEoi, 0);  // ends 0x61
  EXPECT_EQ(b.apic.PendingVector(), -1);
  EXPECT_TRUE(b.eois.empty());
  b.apic.Write(L::kEoi, 0);  // ends the level 0x50: broadcast to the IOAPIC
  EXPECT_EQ(b.eois, std::vector<uint8_t>{0x50});
  EXPECT_EQ(b.apic.PendingVector(), 0x45);
}

TEST(LocalApicState, X2ApicIcrDestinationAndTscDeadlineModeSurvive) {
  ApicHarness a(5);
  a.apic.SetX2Apic(true);
  ASSERT_TRUE(a.apic.WriteMsr(0x80f, 0x1ff));              // SVR
  ASSERT_TRUE(a.apic.WriteMsr(0x832, 0x33 | (2u << 17)));  // LVT timer: TSC-deadline
  a.apic.set_tsc_deadline(5000);
  ASSERT_TRUE(a.apic.WriteMsr(0x830, (uint64_t{0x1234} << 32) | 0x40));  // ICR: to x2APIC 0x1234
  ApicHarness b(5);
  b.apic.SetX2Apic(true);  // from IA32_APIC_BASE, before the page
  ASSERT_TRUE(b.apic.RestoreState(Save(a.apic)));
  uint64_t ldr = 0, lvt = 0;
  ASSERT_TRUE(b.apic.ReadMsr(0x80d, &ldr));
  ASSERT_TRUE(b.apic.ReadMsr(0x832, &lvt));
  EXPECT_EQ(ldr, (0u << 16) | (1u << 5));
  EXPECT_EQ(lvt, 0x33u | (2u << 17));
  uint64_t icr = 0;
  ASSERT_TRUE(b.apic.ReadMsr(0x830, &icr));
  EXPECT_EQ(icr, (uint64_t{0x1234} << 32) | 0x40);
  // The deadline is not in the page: it comes with the MSRs (IA32_TSC_DEADLINE).
  EXPECT_EQ(b.apic.tsc_deadline(), 0u);
  b.apic.set_tsc_deadline(5000);
  b.apic.PollTimer(4999);
  EXPECT_EQ(b.apic.PendingVector(), -1);
  b.apic.PollTimer(5000);
  EXPECT_EQ(b.apic.PendingVector(), 0x33);
}

TEST(LocalApicState, RefusesAnotherApicIdOrPageSize) {
  ApicHarness a(2);
  ApicHarness b(3);
  const Page page = Save(a.apic);
  auto refused = b.apic.RestoreState(page);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("ID 2"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(b.apic.RestoreState(std::span(page).first(512)));
}

// ---- IOAPIC ----

struct IoapicHarness {
  Ioapic ioapic{[this](const ApicMessage& m) {
    sent.push_back(m);
    return true;
  }};
  std::vector<ApicMessage> sent;
  void Program(int pin, uint32_t low, uint32_t high) {
    ioapic.Write(Ioapic::kIoRegSel, static_cast<uint32_t>(0x10 + 2 * pin + 1));
    ioapic.Write(Ioapic::kIoWin, high);
    ioapic.Write(Ioapic::kIoRegSel, static_cast<uint32_t>(0x10 + 2 * pin));
    ioapic.Write(Ioapic::kIoWin, low);
  }
};

TEST(IoapicState, RemoteIrrPinStillWaitsForItsEoiAfterRestore) {
  IoapicHarness a;
  a.Program(5, 0x35 | (1u << 15), 0x01000000);  // level, vector 0x35, to APIC 1
  a.Program(6, 0x36, 0);                        // edge
  a.ioapic.Write(Ioapic::kIoRegSel, 0);
  a.ioapic.Write(Ioapic::kIoWin, 0x07000000);  // ID 7
  a.ioapic.SetLevel(5, true);
  a.ioapic.SetLevel(6, true);
  ASSERT_EQ(a.sent.size(), 2u);
  a.ioapic.Write(Ioapic::kIoRegSel, 0x1a);  // leave IOREGSEL somewhere distinctive
  const accel::IoApicState s = a.ioapic.SaveState();
  EXPECT_EQ(s.irr, 1u << 5);  // the asserted level line; the edge was delivered
  EXPECT_TRUE(s.redirection[5] & Ioapic::kRemoteIrr);

  IoapicHarness b;
  ASSERT_TRUE(b.ioapic.RestoreState(s));
  EXPECT_EQ(b.ioapic.Read(Ioapic::kIoRegSel), 0x1au);
  for (int pin = 0; pin < Ioapic::kPins; ++pin) {
    EXPECT_EQ(b.ioapic.redirection(pin), a.ioapic.redirection(pin)) << "pin " << pin;
  }
  EXPECT_EQ(b.ioapic.id(), 7);
  b.ioapic.SetLevel(5, true);
  EXPECT_TRUE(b.sent.empty());  // Remote IRR: the first is not EOIed yet
  b.ioapic.Eoi(0x35);           // the line is still up: delivered again
  ASSERT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(b.sent[0].vector, 0x35);
  EXPECT_EQ(b.sent[0].destination, 1u);
}

TEST(IoapicState, RefusesAnotherBaseAddress) {
  IoapicHarness a;
  accel::IoApicState s = a.ioapic.SaveState();
  s.base_address = 0xfec01000;
  EXPECT_FALSE(a.ioapic.RestoreState(s));
}

// ---- PIC ----

void InitPics(DualPic& pic) {
  for (int chip = 0; chip < 2; ++chip) {
    pic.Write(chip, 0, 0x11);
    pic.Write(chip, 1, chip == 0 ? 0x20 : 0x28);
    pic.Write(chip, 1, chip == 0 ? 0x04 : 0x02);
    pic.Write(chip, 1, 0x01);
    pic.Write(chip, 1, 0x00);
  }
}

TEST(PicState, InServiceIrqStillBlocksLowerOnesAfterRestore) {
  DualPic a;
  InitPics(a);
  a.WriteElcr(1, 0x08);  // IRQ 11 level
  a.SetIrq(3, true);
  ASSERT_EQ(a.Acknowledge(), 0x23);
  a.SetIrq(5, true);
  a.SetIrq(11, true);
  EXPECT_TRUE(a.Output());  // IRQ 2 (the cascade) beats the in-service IRQ 3
  ASSERT_EQ(a.Acknowledge(), 0x2b);
  accel::PicState master, slave;
  a.SaveState(master, slave);
  EXPECT_EQ(master.irq_base, 0x20);
  EXPECT_EQ(slave.elcr, 0x08);

  DualPic b;
  ASSERT_TRUE(b.RestoreState(master, slave));
  for (int chip = 0; chip < 2; ++chip) {
    EXPECT_EQ(b.irr(chip), a.irr(chip));
    EXPECT_EQ(b.isr(chip), a.isr(chip));
    EXPECT_EQ(b.imr(chip), a.imr(chip));
    EXPECT_EQ(b.ReadElcr(chip), a.ReadElcr(chip));
  }
  EXPECT_FALSE(b.Output());  // IRQ 5 waits behind IRQ 3 and the cascade in service
  b.Write(1, 0, 0x20);       // EOI IRQ 11 on the slave ...
  b.Write(0, 0, 0x20);       // ... and the cascade on the master
  // IRQ 11 is level and still asserted: it asks again before IRQ 5.
  ASSERT_TRUE(b.Output());
  EXPECT_EQ(b.Acknowledge(), 0x2b);
  b.SetIrq(11, false);
  b.Write(1, 0, 0x20);
  b.Write(0, 0, 0x20);
  EXPECT_FALSE(b.Output());  // IRQ 3 still in service
  b.Write(0, 0, 0x20);
  ASSERT_TRUE(b.Output());
  EXPECT_EQ(b.Acknowledge(), 0x25);
}

TEST(PicState, InitialisationSequenceContinuesAcrossRestore) {
  DualPic a;
  a.Write(0, 0, 0x11);  // ICW1 (ICW4 needed)
  a.Write(0, 1, 0x40);  // ICW2
  accel::PicState master, slave;
  a.SaveState(master, slave);
  EXPECT_EQ(master.init_state, 2);  // KVM's numbering: ICW3 next
  DualPic b;
  ASSERT_TRUE(b.RestoreState(master, slave));
  b.Write(0, 1, 0x04);  // ICW3
  b.Write(0, 1, 0x03);  // ICW4: auto-EOI
  b.Write(0, 1, 0xfe);  // OCW1
  EXPECT_EQ(b.imr(0), 0xfe);
  b.SetIrq(0, true);
  EXPECT_EQ(b.Acknowledge(), 0x40);
  EXPECT_EQ(b.isr(0), 0);  // auto-EOI

  master.init_state = 4;
  EXPECT_FALSE(b.RestoreState(master, slave));
}

// ---- PIT ----

uint64_t PitNs(uint64_t ticks) { return (ticks * 1'000'000'000 + Pit::kHz - 1) / Pit::kHz; }

int Pulses(const testing::FakeInterruptLine& irq) {
  int n = 0;
  for (bool level : irq.changes) n += level;
  return n;
}

TEST(PitState, PeriodicCounterResumesItsPhaseAndIrq0TimingOnAnotherClock) {
  ManualClock ca;
  testing::FakeInterruptLine ia;
  Pit a(ca, ia);
  a.Write(3, 0x34);  // counter 0, LSB then MSB, mode 2
  a.Write(0, 1000 & 0xff);
  a.Write(0, 1000 >> 8);
  ca.Advance(PitNs(2400));  // two periods and 400 ticks
  a.Poll();
  ASSERT_EQ(Pulses(ia), 1);
  const uint64_t saved_at = ca.NowNs();
  const accel::PitState s = a.SaveState(saved_at);
  EXPECT_EQ(s.channels[0].count, 1000u);
  EXPECT_EQ(s.channels[0].mode, 2);

  ManualClock cb;
  cb.Set(kLaterNs);
  testing::FakeInterruptLine ib;
  Pit b(cb, ib);
  ASSERT_TRUE(b.RestoreState(s, saved_at));
  EXPECT_EQ(b.count(0), a.count(0));
  EXPECT_EQ(b.NextEventNs() - cb.NowNs(), a.NextEventNs() - ca.NowNs());
  b.Poll();
  EXPECT_EQ(Pulses(ib), 0);  // edges before the save are not raised again
  cb.Advance(b.NextEventNs() - cb.NowNs());
  b.Poll();
  EXPECT_EQ(Pulses(ib), 1);
}

TEST(PitState, LatchedCountHalfReadAndHalfWrittenCountComplete) {
  ManualClock ca;
  testing::FakeInterruptLine ia;
  Pit a(ca, ia);
  a.Write(3, 0xb0);  // counter 2, word, mode 0
  a.Write(2, 0x34);
  a.Write(2, 0x12);
  a.WritePortB(0x03);  // gate 2 high, speaker on
  ca.Advance(PitNs(0x100));
  a.Write(3, 0x80);  // latch counter 2
  const uint16_t latched = a.count(2);
  EXPECT_EQ(a.Read(2), latched & 0xff);
  a.Write(3, 0x34);  // counter 0: control word, then only the LSB of the count
  a.Write(0, 0x99);
  const accel::PitState s = a.SaveState(ca.NowNs());
  EXPECT_EQ(s.channels[2].count_latched, 2);  // KVM's RW_STATE_MSB: the MSB is next
  EXPECT_EQ(s.channels[0].write_state, 4);    // RW_STATE_WORD1
  EXPECT_EQ(s.channels[0].count, 0u);         // programmed, no count loaded yet
  EXPECT_EQ(s.flags, 2u);                     // speaker data on
  EXPECT_EQ(s.channels[1].mode, 0xff);        // never programmed: KVM's reset form, inert there

  ManualClock cb;
  testing::FakeInterruptLine ib;
  Pit b(cb, ib);
  ASSERT_TRUE(b.RestoreState(s, ca.NowNs()));
  EXPECT_EQ(b.Read(2), latched >> 8);
  EXPECT_EQ(b.ReadPortB() & 0x03, 0x03);
  cb.Advance(PitNs(0x1234));
  b.Poll();
  EXPECT_EQ(Pulses(ib), 0);  // counter 0 is not counting yet
  b.Write(0, 0x00);          // MSB: count 0x0099 loaded
  cb.Advance(PitNs(0x99));
  b.Poll();
  EXPECT_EQ(Pulses(ib), 1);
}

TEST(PitState, HpetLegacyFlagDisconnectsIrq0AndKvmResetStateIsUnprogrammed) {
  ManualClock clock;
  testing::FakeInterruptLine irq;
  Pit pit(clock, irq);
  accel::PitState s;
  for (auto& c : s.channels) c.mode = 0xff, c.count = 0x10000;  // KVM's reset state
  s.channels[0].gate = s.channels[1].gate = 1;
  s.flags = 1;  // KVM_PIT_FLAGS_HPET_LEGACY
  ASSERT_TRUE(pit.RestoreState(s, 0));
  EXPECT_EQ(pit.NextEventNs(), UINT64_MAX);
  pit.Write(3, 0x34);
  pit.Write(0, 10);
  pit.Write(0, 0);
  clock.Advance(PitNs(100));
  pit.Poll();
  EXPECT_EQ(Pulses(irq), 0);  // IRQ 0 belongs to the HPET
  pit.SetIrqEnabled(true);
  clock.Advance(PitNs(10));
  pit.Poll();
  EXPECT_EQ(Pulses(irq), 1);
  s.channels[1].count = 0x10001;
  EXPECT_FALSE(pit.RestoreState(s, 0));
}

// ---- HPET ----

struct HpetHarness {
  HpetHarness()
      : hpet(clock, {.set_irq = [this](uint32_t line, bool, bool level) {
               if (level) raised.push_back(line);
             }}) {}
  ManualClock clock;
  std::vector<uint32_t> raised;
  Hpet hpet;
};

constexpr uint64_t kHpetTickNs = Hpet::kPeriodFs / 1'000'000;

TEST(HpetState, CounterStandsStillAcrossTheSaveAndTheComparatorFiresOnTime) {
  HpetHarness a;
  const uint64_t route20 = uint64_t{20} << Hpet::kTnRouteShift;
  a.hpet.Write(Hpet::kTimerBase, 8, Hpet::kTnIntEnb | route20);
  a.hpet.Write(Hpet::kTimerBase + Hpet::kTimerComparator, 8, 1000);
  // Timer 1: level, periodic every 300 ticks, into pin 21.
  const uint64_t t1 = Hpet::kTimerBase + Hpet::kTimerStride;
  a.hpet.Write(t1, 8,
               Hpet::kTnIntEnb | Hpet::kTnIntTypeLevel | Hpet::kTnTypePeriodic | Hpet::kTnValSet |
                   (uint64_t{21} << Hpet::kTnRouteShift));
  a.hpet.Write(t1 + Hpet::kTimerComparator, 8, 300);
  a.hpet.Write(t1 + Hpet::kTimerComparator, 8, 300);
  a.hpet.Write(Hpet::kConfig, 8, Hpet::kEnableCnf);
  a.clock.Advance(400 * kHpetTickNs);
  a.hpet.Poll();
  ASSERT_EQ(a.raised, std::vector<uint32_t>{21});  // timer 1 holds pin 21 (status not cleared)
  const HpetState s = a.hpet.SaveState();
  EXPECT_EQ(s.counter, 400u);

  HpetHarness b;
  b.clock.Set(kLaterNs);
  ASSERT_TRUE(b.hpet.RestoreState(s));
  EXPECT_EQ(b.raised, std::vector<uint32_t>{21});  // the held level line is asserted again
  EXPECT_EQ(b.hpet.counter(), 400u);
  EXPECT_EQ(b.hpet.Read(Hpet::kIntStatus, 8), 2u);
  EXPECT_EQ(b.hpet.Read(t1 + Hpet::kTimerComparator, 8), 600u);
  EXPECT_EQ(b.hpet.NextEventNs(), kLaterNs + 200 * kHpetTickNs);  // timer 1 at 600
  b.clock.Advance(599 * kHpetTickNs);
  b.hpet.Poll();
  // Timer 0 (at 1000) not yet; timer 1 fired at 600, its line already held (level).
  EXPECT_EQ(b.raised, std::vector<uint32_t>{21});
  b.clock.Advance(1 * kHpetTickNs);
  b.hpet.Poll();
  EXPECT_EQ(b.raised, (std::vector<uint32_t>{21, 20}));
}

TEST(HpetState, RefusesStateTheGuestCouldNotHaveWritten) {
  HpetHarness a;
  HpetState s = a.hpet.SaveState();
  s.timers[0].config = uint64_t{3} << Hpet::kTnRouteShift;  // pin 3: not in the route mask
  EXPECT_FALSE(a.hpet.RestoreState(s));
  s = a.hpet.SaveState();
  s.config = 0x4;
  EXPECT_FALSE(a.hpet.RestoreState(s));
}

}  // namespace
}  // namespace vireo::irqchip
