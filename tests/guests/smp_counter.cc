// smp_counter: every CPU (the BSP and each AP from the MADT) adds kIterations to two shared
// counters at once: one with LOCK XADD, one with a plain increment inside a spinlock (LOCK
// XCHG to take it). Any increment lost to a non-atomic LOCKed instruction or a lock that lets
// two CPUs in shows as a total short of cpus x kIterations.
// Prints "cpus: N", "atomic: A", "locked: L"; PASS -> debug-exit 0 (status 1); a wrong total
// fails with code 2 (status 5); CPUs that never finish, code 3 (status 7).
#include "runtime.h"

namespace {

constexpr uint64_t kIterations = 20000;

uint64_t atomic_counter;
volatile uint64_t locked_counter;
rt::Spinlock counter_lock;
int go;
int finished;

void Work() {
  while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) rt::Pause();
  for (uint64_t i = 0; i < kIterations; ++i) {
    __atomic_fetch_add(&atomic_counter, 1, __ATOMIC_SEQ_CST);
    rt::SpinlockGuard g(counter_lock);
    locked_counter = locked_counter + 1;
  }
  __atomic_fetch_add(&finished, 1, __ATOMIC_RELEASE);
}

void ApMain(int) { Work(); }

}  // namespace

int GuestMain(const rt::BootInfo&) {
  const int cpus = rt::StartAps(ApMain, 1000, /*check_in_first=*/true);
  rt::Printf("cpus: %d\n", cpus);
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  Work();
  rt::Deadline d = rt::Deadline::InMs(60000);
  while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) < cpus && !d.Expired()) rt::Pause();
  const int done = __atomic_load_n(&finished, __ATOMIC_ACQUIRE);
  if (done < cpus) rt::Fail("smp_counter", 3, "only some CPUs finished");
  const uint64_t want = kIterations * static_cast<uint64_t>(cpus);
  rt::Printf("atomic: %lu\nlocked: %lu\n", atomic_counter, static_cast<uint64_t>(locked_counter));
  if (atomic_counter != want || locked_counter != want) {
    rt::Printf("expected %lu each\n", want);
    rt::Fail("smp_counter", 2, "increments were lost");
  }
  rt::Pass("smp_counter");
}
