// apic_modes: the local APIC's TSC-deadline timer (SDM Vol. 3 11.5.4.1) and x2APIC mode
// (11.12), each when CPUID offers it.
//
// TSC-deadline, as Linux's lapic_next_deadline drives it: LVT timer in mode 2, then WRMSR
// IA32_TSC_DEADLINE (0x6e0). Each interrupt must arrive, and not before the deadline (the
// handler reads the TSC); after firing the MSR reads 0; a deadline already passed fires at
// once; writing 0 disarms. The PIT at 100 Hz through the IOAPIC keeps hlt waking, so a missing
// interrupt times out instead of hanging.
//
// x2APIC, as Linux's x2apic_enable and x2apic_cluster do: set IA32_APIC_BASE.EXTD, read the
// ID (MSR 0x802, must equal the xAPIC ID) and LDR (0x80d, cluster form derived from the ID),
// then three interrupts to itself: SELF IPI (0x83f), ICR (0x830) physical with the 32-bit ID,
// ICR logical with the LDR as destination. Last, so the runtime's EOIs switch to MSR 0x80b.
//
// Prints "lapic version: 0xNN" first (the APIC answered, whatever CPUID offers), then
// "cpuid tsc-deadline: yes|no", "cpuid x2apic: yes|no", and "SKIP <feature>: not in CPUID"
// for a feature left out. With TSC-deadline: "tsc-deadline interrupts: 3", "tsc-deadline
// early: 0", "tsc-deadline msr after firing: 0", "tsc-deadline past: fired", "tsc-deadline
// disarmed: quiet". With x2APIC: "x2apic id: N, xapic id: N", "x2apic ldr: 0xNNNNNNNN",
// "x2apic self ipi: 1", "x2apic icr physical: 1", "x2apic icr logical: 1".
// Exit: debug-exit 0 (status 1) after "PASS apic_modes". Failures: 3 (status 7) an interrupt
// never came, 4 (status 9) one came before its deadline, 5 (status 11) the MSR did not read
// back / clear, 6 (status 13) a deadline of 0 did not disarm, 7 (status 15) no IRQ0 route,
// 8 (status 17) x2APIC ID or LDR wrong, 9 (status 19) an x2APIC IPI never came.
#include "runtime.h"

namespace {

constexpr uint8_t kDeadlineVector = 0x40;
constexpr uint8_t kWatchdogVector = 0x32;
constexpr uint32_t kMsrTscDeadline = 0x6e0;
constexpr uint32_t kLvtTscDeadlineMode = 2u << 17;
constexpr uint32_t kCpuid1EcxTscDeadline = 1u << 24;
constexpr uint32_t kCpuid1EcxX2Apic = 1u << 21;
constexpr uint8_t kIpiVector = 0x41;

volatile int deadline_irqs;
volatile uint64_t irq_tsc;

void OnDeadline(rt::InterruptFrame&) {
  irq_tsc = rt::Rdtsc();
  deadline_irqs = deadline_irqs + 1;
}
void OnWatchdog(rt::InterruptFrame&) {}
volatile int ipis;
void OnIpi(rt::InterruptFrame&) { ipis = ipis + 1; }

uint32_t Cpuid1Ecx() {
  uint32_t a = 1, b, c = 0, d;
  asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  return c;
}

// hlt until `counter` reaches `wanted` or `ms` pass (the watchdog wakes hlt).
bool WaitFor(int wanted, uint64_t ms, volatile int& counter = deadline_irqs) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (counter < wanted) {
    if (d.Expired()) return false;
    rt::StiHlt();
    rt::Cli();
  }
  return true;
}

void TscDeadline(uint64_t tsc_per_ms) {
  rt::LapicWrite(rt::kLapicLvtTimer, kDeadlineVector | kLvtTscDeadlineMode);
  // Three deadlines 2 ms ahead: each interrupt comes, at or after its deadline.
  int early = 0;
  for (int i = 0; i < 3; ++i) {
    const uint64_t deadline = rt::Rdtsc() + 2 * tsc_per_ms;
    rt::Wrmsr(kMsrTscDeadline, deadline);
    if (i == 0 && rt::Rdmsr(kMsrTscDeadline) != deadline) {
      rt::Fail("apic_modes", 5, "IA32_TSC_DEADLINE does not read back while armed");
    }
    if (!WaitFor(i + 1, 1000)) rt::Fail("apic_modes", 3, "no TSC-deadline interrupt");
    if (irq_tsc < deadline) ++early;
  }
  rt::Printf("tsc-deadline interrupts: %d\n", deadline_irqs);
  rt::Printf("tsc-deadline early: %d\n", early);
  if (early != 0) rt::Fail("apic_modes", 4, "a TSC-deadline interrupt came before its deadline");
  const uint64_t after = rt::Rdmsr(kMsrTscDeadline);
  rt::Printf("tsc-deadline msr after firing: %lu\n", after);
  if (after != 0) rt::Fail("apic_modes", 5, "IA32_TSC_DEADLINE not cleared by firing");

  // A deadline already passed fires at once.
  rt::Wrmsr(kMsrTscDeadline, rt::Rdtsc() - 1);
  if (!WaitFor(4, 1000)) rt::Fail("apic_modes", 3, "a past TSC deadline did not fire");
  rt::Printf("tsc-deadline past: fired\n");

  // Writing 0 disarms: a deadline 1 ms ahead, cancelled, stays quiet for 5 ms.
  rt::Wrmsr(kMsrTscDeadline, rt::Rdtsc() + tsc_per_ms);
  rt::Wrmsr(kMsrTscDeadline, 0);
  if (WaitFor(5, 5)) rt::Fail("apic_modes", 6, "a disarmed TSC deadline fired");
  rt::Printf("tsc-deadline disarmed: quiet\n");
  rt::LapicWrite(rt::kLapicLvtTimer, 1u << 16);
}

void X2Apic() {
  const uint32_t xapic_id = rt::LapicId();
  rt::LapicEnableX2Apic();
  const uint32_t id = static_cast<uint32_t>(rt::Rdmsr(0x802));
  const uint32_t ldr = static_cast<uint32_t>(rt::Rdmsr(0x80d));
  rt::Printf("x2apic id: %u, xapic id: %u\n", id, xapic_id);
  rt::Printf("x2apic ldr: %#x\n", ldr);
  if (id != xapic_id) rt::Fail("apic_modes", 8, "x2APIC ID differs from the xAPIC ID");
  if (ldr != (((id >> 4) << 16) | (1u << (id & 0xf)))) {
    rt::Fail("apic_modes", 8, "x2APIC LDR is not the cluster form of the ID");
  }
  rt::SetInterruptHandler(kIpiVector, OnIpi);
  rt::Wrmsr(0x83f, kIpiVector);  // SELF IPI
  if (!WaitFor(1, 1000, ipis)) rt::Fail("apic_modes", 9, "no x2APIC SELF IPI");
  rt::Printf("x2apic self ipi: %d\n", ipis);
  // ICR: fixed, physical, destination = own 32-bit ID in bits 63:32.
  rt::Wrmsr(0x830, (uint64_t{id} << 32) | kIpiVector);
  if (!WaitFor(2, 1000, ipis)) rt::Fail("apic_modes", 9, "no x2APIC ICR physical IPI");
  rt::Printf("x2apic icr physical: %d\n", ipis - 1);
  // ICR: fixed, logical (bit 11), destination = own LDR.
  rt::Wrmsr(0x830, (uint64_t{ldr} << 32) | (1u << 11) | kIpiVector);
  if (!WaitFor(3, 1000, ipis)) rt::Fail("apic_modes", 9, "no x2APIC ICR logical IPI");
  rt::Printf("x2apic icr logical: %d\n", ipis - 2);
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  rt::LapicEnable();
  rt::Printf("lapic version: %#x\n", rt::LapicRead(rt::kLapicVersion) & 0xff);
  const uint32_t ecx = Cpuid1Ecx();
  const bool tsc_deadline = ecx & kCpuid1EcxTscDeadline;
  const bool x2apic = ecx & kCpuid1EcxX2Apic;
  rt::Printf("cpuid tsc-deadline: %s\n", tsc_deadline ? "yes" : "no");
  rt::Printf("cpuid x2apic: %s\n", x2apic ? "yes" : "no");

  const uint64_t tsc_per_ms = rt::TscPerMs();  // PIT channel 2, before channel 0 runs
  rt::SetInterruptHandler(kDeadlineVector, OnDeadline);
  rt::SetInterruptHandler(kWatchdogVector, OnWatchdog);
  if (rt::RouteIsaIrq(0, kWatchdogVector, static_cast<uint8_t>(rt::LapicId())) < 0) {
    rt::Fail("apic_modes", 7, "no route for IRQ0");
  }
  rt::PitStartPeriodic(100);
  if (tsc_deadline) {
    TscDeadline(tsc_per_ms);
  } else {
    rt::Printf("SKIP tsc-deadline: not in CPUID\n");
  }
  if (x2apic) {
    X2Apic();
  } else {
    rt::Printf("SKIP x2apic: not in CPUID\n");
  }
  rt::MaskIsaIrq(0);
  rt::PitStop();
  rt::Pass("apic_modes");
}
