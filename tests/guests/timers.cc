// timers: interrupt delivery from the PIT (ISA IRQ0, routed by the MADT override to GSI 2)
// through the IOAPIC, then from the LAPIC timer in periodic and one-shot modes. Waits with hlt.
//
// Prints "pit ticks: N", "lapic periodic ticks: N", "lapic oneshot ticks: N".
// Exit: debug-exit 0 (status 1) after "PASS timers". Failures: 3 (status 7) PIT timeout,
// 4 (status 9) LAPIC periodic timeout, 5 (status 11) LAPIC one-shot timeout, 6 (status 13) the
// IRQ0 route is missing, 7 (status 15) a one-shot timer fired more than once.
#include "runtime.h"

namespace {

constexpr uint8_t kPitVector = 0x30;
constexpr uint8_t kLapicTimerVector = 0x31;
constexpr uint8_t kWatchdogVector = 0x32;
constexpr int kWanted = 5;
// 62500 ticks at divide-by-16 is 1 ms on KVM's 1 GHz APIC bus clock.
constexpr uint32_t kLapicMs = 62500;

volatile int pit_ticks;
volatile int lapic_ticks;
volatile int watchdog_ticks;

void OnPit(rt::InterruptFrame&) { pit_ticks = pit_ticks + 1; }
void OnLapicTimer(rt::InterruptFrame&) { lapic_ticks = lapic_ticks + 1; }
void OnWatchdog(rt::InterruptFrame&) { watchdog_ticks = watchdog_ticks + 1; }

// hlt until `counter` reaches `wanted`; the other timer (the watchdog) keeps waking hlt so the
// rdtsc deadline is checked even if the timer under test never fires.
bool WaitFor(volatile int& counter, int wanted, uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (counter < wanted) {
    if (d.Expired()) return false;
    rt::StiHlt();
    rt::Cli();
  }
  return true;
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  rt::LapicEnable();
  rt::TscPerMs();  // calibrate with PIT channel 2 before channel 0 is in use
  uint8_t self = static_cast<uint8_t>(rt::LapicId());
  rt::SetInterruptHandler(kPitVector, OnPit);
  rt::SetInterruptHandler(kLapicTimerVector, OnLapicTimer);
  rt::SetInterruptHandler(kWatchdogVector, OnWatchdog);

  // Phase 1: PIT at 100 Hz through the IOAPIC; the LAPIC timer (10 ms periodic) is the watchdog.
  if (rt::RouteIsaIrq(0, kPitVector, self) < 0) rt::Fail("timers", 6, "no route for IRQ0");
  rt::LapicTimerStart(kWatchdogVector, 10 * kLapicMs, true);
  rt::PitStartPeriodic(100);
  bool pit_ok = WaitFor(pit_ticks, kWanted, 2000);
  rt::MaskIsaIrq(0);
  rt::PitStop();
  rt::LapicTimerStop();
  rt::Printf("pit ticks: %d\n", pit_ticks);
  if (!pit_ok) rt::Fail("timers", 3, "timed out waiting for PIT interrupts");

  // Phases 2 and 3: the LAPIC timer; now the PIT (100 Hz, watchdog vector) keeps hlt waking.
  rt::RouteIsaIrq(0, kWatchdogVector, self);
  rt::PitStartPeriodic(100);
  rt::LapicTimerStart(kLapicTimerVector, kLapicMs, true);
  bool periodic_ok = WaitFor(lapic_ticks, kWanted, 2000);
  rt::LapicTimerStop();
  rt::Printf("lapic periodic ticks: %d\n", lapic_ticks);
  if (!periodic_ok) rt::Fail("timers", 4, "timed out waiting for LAPIC periodic interrupts");

  int oneshots = 0;
  for (int i = 0; i < kWanted; ++i) {
    lapic_ticks = 0;
    rt::LapicTimerStart(kLapicTimerVector, kLapicMs, false);
    if (!WaitFor(lapic_ticks, 1, 1000)) {
      rt::Fail("timers", 5, "timed out waiting for a LAPIC one-shot interrupt");
    }
    // A one-shot timer must stay quiet after firing: wait 5 ms with interrupts on.
    rt::Deadline quiet = rt::Deadline::InMs(5);
    while (!quiet.Expired()) {
      rt::StiHlt();
      rt::Cli();
    }
    if (lapic_ticks != 1) rt::Fail("timers", 7, "one-shot LAPIC timer fired more than once");
    ++oneshots;
  }
  rt::MaskIsaIrq(0);
  rt::PitStop();
  rt::Printf("lapic oneshot ticks: %d\n", oneshots);
  rt::Printf("watchdog ticks: %d\n", watchdog_ticks);
  rt::Pass("timers");
}
