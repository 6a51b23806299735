// smp: starts every AP in the MADT with INIT-SIPI-SIPI; each prints "cpu N apic id M up" under
// the print lock. The BSP then prints "cpus up: N".
// Exit: debug-exit N, the number of CPUs up including the BSP (status (N << 1) | 1);
// 3 (status 7) if ACPI tables are missing.
#include "runtime.h"

namespace {

void ApMain(int index) {
  rt::SpinlockGuard g(rt::PrintLock());
  rt::Printf("cpu %d apic id %u up\n", index, rt::LapicId());
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  if (!rt::AcpiAvailable()) rt::Fail("smp", 3, "no ACPI tables");
  rt::Printf("madt cpus: %d\n", rt::GetMadt().cpu_count);
  {
    rt::SpinlockGuard g(rt::PrintLock());
    rt::Printf("cpu 0 apic id %u up\n", rt::LapicId());
  }
  int up = rt::StartAps(ApMain, 1000);
  rt::SpinlockGuard g(rt::PrintLock());
  rt::Printf("cpus up: %d\n", up);
  return up;
}
