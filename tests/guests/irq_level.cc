// irq_level: a level-triggered interrupt through the IOAPIC and its Remote IRR (82093AA 3.2.4),
// with the HPET as the level source (IA-PC HPET 1.0a 2.3.9.1: a level timer holds its line
// until software writes 1 to its GENERAL_INT_STATUS bit). Timer 0 is one-shot and level
// triggered on the first IOAPIC pin its route mask allows; the vector's handler does not EOI,
// so the interrupt stays in service until the guest says so.
//
// 1. The timer fires: the vector arrives once; while it is in service (no EOI) the entry's
//    Remote IRR reads 1 and, for 20 ms with interrupts on, nothing more arrives and the
//    vector is not pending in the LAPIC's IRR (the IOAPIC sent no second message).
// 2. EOI with the line still asserted: the IOAPIC clears Remote IRR and delivers again.
// 3. The status bit cleared (the line drops), then EOI: Remote IRR reads 0 and nothing more
//    arrives for 20 ms.
// 4. The entry masked, the timer fired again: nothing for 20 ms although the line is asserted;
//    unmasking delivers at once.
// The LAPIC timer (vector 0xe0, a higher priority class than the level vector, so it is taken
// while that one is in service) is the watchdog that wakes hlt.
//
// A LAPIC that keeps no ISR bit for the vector it delivers (the development host's kvm_pvm:
// docs/architecture.md, "Host notes") EOIs it at once, so a level line that stays asserted
// storms; the guest sees that in its handler, prints a SKIP line for steps 1 and 2, clears the
// source at once and runs steps 3 and 4 on the deliveries after a 5 ms settle.
//
// Prints "level pin: GSI N", "in service: remote irr 1, deliveries 1, lapic irr 0",
// "eoi with the line asserted: deliveries 2, remote irr 1" (or "SKIP in service: ..."),
// "source cleared and eoi: remote irr 0, later deliveries 0", "masked with the line asserted:
// deliveries 0 (line 1)", "unmasked: delivered", "ended: remote irr 0, later deliveries 0".
// Exit: debug-exit 0 (status 1) after "PASS irq_level". Failures: 3 (status 7) no HPET or no
// IOAPIC for its route, 4 (status 9) the level interrupt never arrived, 5 (status 11) Remote
// IRR clear or a second delivery while in service, 6 (status 13) no redelivery after EOI with
// the line asserted, 7 (status 15) Remote IRR still set or a delivery after the source was
// cleared, 8 (status 17) a masked pin delivered, or unmasking did not.
#include "runtime.h"

namespace {

// HPET registers (IA-PC HPET 1.0a table 2-1) and bits.
constexpr uint64_t kConfig = 0x010;
constexpr uint64_t kIntStatus = 0x020;
constexpr uint64_t kCounter = 0x0f0;
constexpr uint64_t kT0Config = 0x100;
constexpr uint64_t kT0Comparator = 0x108;
constexpr uint64_t kEnable = 1 << 0;
constexpr uint64_t kIntTypeLevel = 1 << 1;
constexpr uint64_t kIntEnb = 1 << 2;

constexpr uint32_t kRemoteIrr = 1u << 14;
constexpr uint32_t kRteMasked = 1u << 16;
constexpr uint32_t kLapicIsr = 0x100;
constexpr uint32_t kLapicIrr = 0x200;
constexpr uint8_t kVector = 0x60;
constexpr uint8_t kWatchdogVector = 0xe0;
constexpr uint32_t kLapicMs = 62500;  // divide-by-16 on a 1 GHz APIC bus clock

volatile int deliveries;
volatile int isr_held;  // the vector's ISR bit, read in its first handler
uint64_t hpet;
uint64_t ioapic;
int pin;
uint64_t ticks_per_ms;

int LapicBit(uint32_t reg, uint8_t v) {
  return (rt::LapicRead(reg + 0x10 * (v / 32)) >> (v % 32)) & 1;
}

// No EOI: the interrupt stays in service until the guest's own LapicEoi.
void OnLevel(rt::InterruptFrame&) {
  if (deliveries == 0) isr_held = LapicBit(kLapicIsr, kVector);
  deliveries = deliveries + 1;
}
void OnWatchdog(rt::InterruptFrame&) {}

uint64_t Read(uint64_t reg) { return rt::MmioRead<uint64_t>(hpet + reg); }
void Write(uint64_t reg, uint64_t v) { rt::MmioWrite<uint64_t>(hpet + reg, v); }

uint8_t RteReg() { return static_cast<uint8_t>(0x10 + 2 * pin); }
int RemoteIrr() { return (rt::IoapicRead(ioapic, RteReg()) & kRemoteIrr) ? 1 : 0; }
int LineAsserted() { return static_cast<int>(Read(kIntStatus) & 1); }

// hlt with interrupts on until `wanted` deliveries or `ms` pass.
bool WaitFor(int wanted, uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (deliveries < wanted) {
    if (d.Expired()) return false;
    rt::StiHlt();
    rt::Cli();
  }
  return true;
}

// `ms` with interrupts on, so anything pending arrives.
void Quiet(uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (!d.Expired()) {
    rt::StiHlt();
    rt::Cli();
  }
}

// Timer 0 fires once, 1 ms from now.
void Arm() { Write(kT0Comparator, Read(kCounter) + ticks_per_ms); }

// Clears the source and EOIs; returns Remote IRR then and the deliveries in the next 20 ms
// (after a 5 ms settle where the LAPIC keeps no ISR bit: one may be in flight).
void EndInterrupt(int* remote, int* later) {
  Write(kIntStatus, 1);
  rt::LapicEoi();
  if (!isr_held) Quiet(5);
  *remote = RemoteIrr();
  const int before = deliveries;
  Quiet(20);
  *later = deliveries - before;
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  const uint64_t table = rt::AcpiFindTable("HPET");
  if (table == 0) rt::Fail("irq_level", 3, "no ACPI HPET table (run with --hpet on)");
  hpet = rt::MmioRead<uint64_t>(table + 44);
  ticks_per_ms = 1'000'000'000'000 / (Read(0) >> 32);
  const uint32_t routes = static_cast<uint32_t>(Read(kT0Config) >> 32);
  if (routes == 0) rt::Fail("irq_level", 3, "HPET timer 0 has no IOAPIC routes");
  int gsi = 0;
  while (!((routes >> gsi) & 1)) ++gsi;
  const rt::Madt& madt = rt::GetMadt();
  ioapic = 0;
  for (int i = 0; i < madt.ioapic_count; ++i) {
    const uint32_t first = madt.ioapics[i].gsi_base;
    if (static_cast<uint32_t>(gsi) >= first &&
        static_cast<uint32_t>(gsi) < first + rt::IoapicPins(madt.ioapics[i].addr)) {
      ioapic = madt.ioapics[i].addr;
      pin = gsi - static_cast<int>(first);
    }
  }
  if (ioapic == 0) rt::Fail("irq_level", 3, "no IOAPIC owns the HPET timer's route");
  rt::Printf("level pin: GSI %d\n", gsi);

  rt::LapicEnable();
  rt::TscPerMs();
  rt::SetInterruptHandlerNoEoi(kVector, OnLevel);
  rt::SetInterruptHandler(kWatchdogVector, OnWatchdog);
  rt::IoapicSetRedirection(ioapic, pin,
                           {.vector = kVector,
                            .dest_apic_id = static_cast<uint8_t>(rt::LapicId()),
                            .level_triggered = true,
                            .active_low = false,
                            .masked = false});
  rt::LapicTimerStart(kWatchdogVector, 10 * kLapicMs, true);

  // Timer 0: one-shot, level, on `gsi`; the counter from 0.
  Write(kConfig, 0);
  Write(kT0Config, kIntTypeLevel | kIntEnb | (static_cast<uint64_t>(gsi) << 9));
  Write(kIntStatus, 1);
  Write(kCounter, 0);
  Write(kT0Comparator, ticks_per_ms);
  Write(kConfig, kEnable);

  // 1. Delivered once, then held by Remote IRR.
  if (!WaitFor(1, 2000)) rt::Fail("irq_level", 4, "the level interrupt never arrived");
  if (isr_held) {
    const int remote = RemoteIrr();
    Quiet(20);
    const int pending = LapicBit(kLapicIrr, kVector);
    rt::Printf("in service: remote irr %d, deliveries %d, lapic irr %d\n", remote, deliveries,
               pending);
    if (remote != 1 || deliveries != 1 || pending != 0) {
      rt::Fail("irq_level", 5, "Remote IRR clear, or the vector sent again while in service");
    }

    // 2. EOI while the line is still asserted: delivered again.
    rt::LapicEoi();
    const bool again = WaitFor(2, 1000);
    rt::Printf("eoi with the line asserted: deliveries %d, remote irr %d\n", deliveries,
               RemoteIrr());
    if (!again || RemoteIrr() != 1) {
      rt::Fail("irq_level", 6, "no redelivery after EOI with the line still asserted");
    }
  } else {
    rt::Printf(
        "SKIP in service: the LAPIC kept no ISR bit for vector %#x (the host's KVM EOIs "
        "at once), so nothing holds it in service\n",
        kVector);
  }

  // 3. The source cleared, then EOI: nothing more.
  int remote = 0;
  int later = 0;
  EndInterrupt(&remote, &later);
  rt::Printf("source cleared and eoi: remote irr %d, later deliveries %d\n", remote, later);
  if (remote != 0 || later != 0 || (isr_held && deliveries != 2)) {
    rt::Fail("irq_level", 7, "Remote IRR still set, or a delivery after the source was cleared");
  }

  // 4. Masked: the line is asserted but nothing arrives until the entry is unmasked.
  rt::IoapicWrite(ioapic, RteReg(), rt::IoapicRead(ioapic, RteReg()) | kRteMasked);
  int before = deliveries;
  Arm();
  Quiet(20);
  const int asserted = LineAsserted();
  rt::Printf("masked with the line asserted: deliveries %d (line %d)\n", deliveries - before,
             asserted);
  if (deliveries != before || asserted != 1) {
    rt::Fail("irq_level", 8, "a masked level pin delivered (or the timer never fired)");
  }
  rt::IoapicWrite(ioapic, RteReg(), rt::IoapicRead(ioapic, RteReg()) & ~kRteMasked);
  if (!WaitFor(before + 1, 1000)) {
    rt::Fail("irq_level", 8, "unmasking an asserted level pin did not deliver");
  }
  rt::Printf("unmasked: delivered\n");
  before = deliveries;
  EndInterrupt(&remote, &later);
  rt::Printf("ended: remote irr %d, later deliveries %d\n", remote, later);
  if (remote != 0 || later != 0 || (isr_held && before != 3)) {
    rt::Fail("irq_level", 7, "Remote IRR still set, or a delivery after the source was cleared");
  }

  Write(kConfig, 0);
  rt::IoapicMask(ioapic, pin);
  rt::LapicTimerStop();
  rt::Pass("irq_level");
}
