// apic_delivery (2 CPUs): logical-destination and lowest-priority IPIs between the BSP (APIC
// ID 0) and one AP (ID 1), both in the flat logical model (DFR all ones) with LDR bit 0 and
// bit 1, as Linux's flat APIC driver sets them (SDM Vol. 3 11.6.2.2, 11.6.2.4).
//
// 1. Fixed, logical destination 0x02: only the AP takes it.
// 2. Fixed, logical destination 0x03: each CPU takes it once.
// 3. Lowest priority, destination 0x03, four times: each goes to exactly one CPU, so four
//    interrupts in all (which one is the platform's choice: KVM may hash the vector, Vireo's
//    software CPU picks the lower TPR class and alternates between equals: 2 and 2).
// 4. The same with the BSP's TPR at 0x60 (vector 0x70 stays deliverable to both): prints where
//    they went; the software CPU sends all four to the AP, the lower priority.
//
// Prints "logical ap only: bsp 0 ap 1", "logical both: bsp 1 ap 1", "lowest priority: 4 of
// 4 (bsp B ap A)", "lowest priority, bsp tpr 0x60: bsp B ap A".
// Exit: debug-exit 0 (status 1) after "PASS apic_delivery". Failures: 3 (status 7) not two
// CPUs, 4 (status 9) an IPI went to the wrong CPUs or never came, 5 (status 11) a
// lowest-priority IPI was taken twice or not at all.
#include "runtime.h"

namespace {

constexpr uint8_t kVector = 0x50;
constexpr uint8_t kHighVector = 0x70;
constexpr uint32_t kLapicTpr = 0x080;
constexpr uint32_t kLapicLdr = 0x0d0;
constexpr uint32_t kLapicDfr = 0x0e0;
constexpr uint32_t kIcrLogical = 1u << 11;
constexpr uint32_t kIcrLowestPriority = 1u << 8;

volatile int hits[2];  // by APIC ID
int ap_ready;
int stop;

void OnIpi(rt::InterruptFrame&) {
  const uint32_t id = rt::LapicId();
  if (id < 2) __atomic_fetch_add(&hits[id], 1, __ATOMIC_SEQ_CST);
}

void FlatLogical(uint32_t bit) {
  rt::LapicWrite(kLapicDfr, 0xffffffff);
  rt::LapicWrite(kLapicLdr, bit << 24);
}

void ApMain(int) {
  rt::LapicEnable();
  FlatLogical(1u << 1);
  __atomic_store_n(&ap_ready, 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
    rt::StiHlt();
    rt::Cli();
  }
}

void Send(uint8_t mda, uint32_t low) {
  rt::LapicWrite(rt::kLapicIcrHigh, uint32_t{mda} << 24);
  rt::LapicWrite(rt::kLapicIcrLow, low | kIcrLogical);
}

// Lets the BSP take its interrupts (the AP takes its own from hlt) until `total` hits are in
// or `ms` pass, then a further 5 ms so a duplicate would show.
void Settle(int total, uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (hits[0] + hits[1] < total && !d.Expired()) {
    rt::Sti();
    rt::Pause();
    rt::Cli();
  }
  rt::Deadline quiet = rt::Deadline::InMs(5);
  while (!quiet.Expired()) {
    rt::Sti();
    rt::Pause();
    rt::Cli();
  }
}

void Expect(const char* what, int bsp, int ap) {
  rt::Printf("%s: bsp %d ap %d\n", what, hits[0], hits[1]);
  if (hits[0] != bsp || hits[1] != ap) rt::Fail("apic_delivery", 4, "IPI went to the wrong CPUs");
  hits[0] = 0;
  hits[1] = 0;
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  rt::LapicEnable();
  FlatLogical(1u << 0);
  rt::SetInterruptHandler(kVector, OnIpi);
  rt::SetInterruptHandler(kHighVector, OnIpi);
  const int cpus = rt::StartAps(ApMain, 1000, /*check_in_first=*/true);
  rt::Printf("cpus: %d\n", cpus);
  if (cpus != 2) rt::Fail("apic_delivery", 3, "this guest needs exactly 2 CPUs");
  rt::Deadline ready = rt::Deadline::InMs(1000);
  while (!__atomic_load_n(&ap_ready, __ATOMIC_ACQUIRE)) {
    if (ready.Expired()) rt::Fail("apic_delivery", 3, "the AP never set up its APIC");
    rt::Pause();
  }

  Send(0x02, kVector);
  Settle(1, 1000);
  Expect("logical ap only", 0, 1);
  Send(0x03, kVector);
  Settle(2, 1000);
  Expect("logical both", 1, 1);

  // One at a time: two sends of one vector to a CPU that has not taken the first yet would
  // merge in its IRR.
  for (int i = 0; i < 4; ++i) {
    Send(0x03, kVector | kIcrLowestPriority);
    Settle(i + 1, 1000);
  }
  const int taken = hits[0] + hits[1];
  rt::Printf("lowest priority: %d of 4 (bsp %d ap %d)\n", taken, hits[0], hits[1]);
  if (taken != 4) rt::Fail("apic_delivery", 5, "a lowest-priority IPI was not taken exactly once");
  hits[0] = 0;
  hits[1] = 0;

  // The BSP raises its TPR to class 6 (vector 0x70 stays deliverable to both).
  rt::LapicWrite(kLapicTpr, 0x60);
  for (int i = 0; i < 4; ++i) {
    Send(0x03, kHighVector | kIcrLowestPriority);
    Settle(i + 1, 1000);
  }
  rt::Printf("lowest priority, bsp tpr 0x60: bsp %d ap %d\n", hits[0], hits[1]);
  rt::LapicWrite(kLapicTpr, 0);
  if (hits[0] + hits[1] != 4) {
    rt::Fail("apic_delivery", 5, "a lowest-priority IPI was not taken exactly once");
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  rt::Pass("apic_delivery");
}
