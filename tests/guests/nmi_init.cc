// nmi_init (2 CPUs): NMI and INIT/SIPI IPIs to an AP that is running, not halted.
//
// The AP bumps a generation counter as it starts, enables its APIC and spins at CPL0 (a pause
// loop, kept short: some hosts emulate guest CPL0), counting iterations, with interrupts off.
// 1. The BSP sends it an NMI (ICR delivery mode 100b, SDM Vol. 3 11.6.1): the AP's NMI handler
//    counts it and the loop goes on.
// 2. The BSP sends INIT, then SIPI, to the running AP: it leaves the loop, restarts in real
//    mode from the trampoline (the runtime's smp.cc start-up path) and bumps the generation
//    to 2; INIT reset its APIC, so it found the APIC software-disabled (SVR bit 8 clear).
// 3. An NMI to the restarted AP is counted again.
// 4. An NMI to the BSP's own APIC ID (no shorthand: NMI by "self" is invalid) is counted.
//
// Prints "cpus: 2", "nmi to running ap: 1, loop goes on: yes", "ap generation after
// init/sipi: 2", "ap svr after init: 0x..", "nmi to restarted ap: 2", "nmi to self: 1".
// Exit: debug-exit 0 (status 1) after "PASS nmi_init". Failures: 3 (status 7) not two CPUs,
// 4 (status 9) the AP took no NMI or its loop stopped, 5 (status 11) the AP did not restart
// after INIT/SIPI, 6 (status 13) the restarted AP's APIC was not reset or took no NMI,
// 7 (status 15) the BSP took no NMI sent to itself.
#include "runtime.h"

namespace {

constexpr uint32_t kIcrNmi = 4u << 8;
constexpr uint32_t kIcrAssert = 1u << 14;
constexpr uint32_t kIcrPending = 1u << 12;

volatile int nmis[2];  // by APIC ID
int generation;
volatile uint32_t svr_at_start;
volatile uint64_t spins;
int stop;

void OnNmi(rt::InterruptFrame&) {
  const uint32_t id = rt::LapicId();
  if (id < 2) __atomic_fetch_add(&nmis[id], 1, __ATOMIC_SEQ_CST);
}

void ApMain(int) {
  svr_at_start = rt::LapicRead(rt::kLapicSvr);
  __atomic_fetch_add(&generation, 1, __ATOMIC_SEQ_CST);
  rt::LapicEnable();
  while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
    spins = spins + 1;
    rt::Pause();
  }
}

void SendNmi(uint32_t apic_id) {
  rt::LapicWrite(rt::kLapicIcrHigh, apic_id << 24);
  rt::LapicWrite(rt::kLapicIcrLow, kIcrNmi | kIcrAssert);
  for (int i = 0; i < 100000 && (rt::LapicRead(rt::kLapicIcrLow) & kIcrPending); ++i) rt::Pause();
}

// Waits (interrupts off; NMIs still come) until `*v` reaches `wanted` or `ms` pass.
template <typename T>
bool WaitFor(volatile T* v, T wanted, uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (__atomic_load_n(v, __ATOMIC_ACQUIRE) < wanted) {
    if (d.Expired()) return false;
    rt::Pause();
  }
  return true;
}

bool LoopGoesOn() {
  const uint64_t s = spins;
  return WaitFor<uint64_t>(&spins, s + 100, 1000);
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  rt::LapicEnable();
  rt::SetNmiHandler(OnNmi);
  const int cpus = rt::StartAps(ApMain, 1000, /*check_in_first=*/true);
  rt::Printf("cpus: %d\n", cpus);
  if (cpus != 2) rt::Fail("nmi_init", 3, "this guest needs exactly 2 CPUs");
  if (!WaitFor<int>(&generation, 1, 1000) || !LoopGoesOn()) {
    rt::Fail("nmi_init", 3, "the AP never started its loop");
  }

  // 1. NMI to the running AP.
  SendNmi(1);
  const bool taken = WaitFor<int>(&nmis[1], 1, 1000);
  const bool goes_on = LoopGoesOn();
  rt::Printf("nmi to running ap: %d, loop goes on: %s\n", nmis[1], goes_on ? "yes" : "no");
  if (!taken || !goes_on) rt::Fail("nmi_init", 4, "the AP took no NMI, or its loop stopped");

  // 2. INIT, then SIPI, to the running AP: a restart through the trampoline.
  rt::LapicStartAp(1, static_cast<uint8_t>(rt::kTrampolinePage >> 12));
  const bool restarted = WaitFor<int>(&generation, 2, 1000) && LoopGoesOn();
  rt::Printf("ap generation after init/sipi: %d\n", generation);
  if (!restarted) rt::Fail("nmi_init", 5, "the AP did not restart after INIT and SIPI");
  rt::Printf("ap svr after init: %#x\n", svr_at_start);
  if (svr_at_start & 0x100) rt::Fail("nmi_init", 6, "INIT did not reset the AP's APIC");

  // 3. NMI to the restarted AP.
  SendNmi(1);
  const bool again = WaitFor<int>(&nmis[1], 2, 1000) && LoopGoesOn();
  rt::Printf("nmi to restarted ap: %d\n", nmis[1]);
  if (!again) rt::Fail("nmi_init", 6, "the restarted AP took no NMI");

  // 4. NMI to the BSP itself, by its APIC ID.
  SendNmi(rt::LapicId());
  const bool self = WaitFor<int>(&nmis[0], 1, 1000);
  rt::Printf("nmi to self: %d\n", nmis[0]);
  if (!self) rt::Fail("nmi_init", 7, "the BSP took no NMI sent to its own APIC ID");

  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  rt::Pass("nmi_init");
}
