// api_counter: a guest for the control API tests (tests/integration/api_test.py). It prints
// "count N" for N = 0, 1, 2, ... about every 20 ms, so a pause shows as silence and a resume
// as the next number, with no gap and no repeat. The wait runs at CPL3 (native speed where
// CPL0 is emulated); only the print and one PM1_STS read per line run at CPL0.
//
// Shutdown: it polls PM1_STS for PWRBTN_STS (ACPI 6.4 §4.8.3.1.1) instead of taking the SCI,
// which keeps its CPL0 side tiny; when the API presses the power button it prints
// "power button", acknowledges the status bit and powers off through \_S5 (status 0).
// Exit: 0 (powered off); debug-exit 3 (status 7) after kMaxCount lines with no button, so a
// forgotten VM ends; 4 (status 9) without ACPI; 5 (status 11) if S5 did not power off.
#include "runtime.h"

namespace {

constexpr uint64_t kMaxCount = 30000;  // ~10 minutes
constexpr uint16_t kPwrbtnSts = 1 << 8;

uint64_t SpinUntil(uint64_t deadline) {
  while (rt::Rdtsc() < deadline) {
  }
  return 0;
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  if (!rt::AcpiAvailable() || rt::GetFadt().pm1a_evt == 0)
    rt::Fail("api_counter", 4, "no ACPI PM1a");
  const uint16_t pm1_sts = rt::GetFadt().pm1a_evt;
  const uint64_t ticks = 20 * rt::TscPerMs();
  rt::Printf("api_counter: pm1a_evt %#x\n", pm1_sts);
  for (uint64_t n = 0; n < kMaxCount; ++n) {
    rt::Printf("count %lu\n", n);
    rt::RunAtCpl3(SpinUntil, rt::Rdtsc() + ticks);
    if (rt::Inw(pm1_sts) & kPwrbtnSts) {
      rt::Printf("power button\n");
      rt::Outw(pm1_sts, kPwrbtnSts);  // write 1 to clear, as an OS acknowledges the event
      rt::AcpiPoweroff();
      rt::Fail("api_counter", 5, "ACPI S5 did not power off");
    }
  }
  rt::Fail("api_counter", 3, "no power button before the count ran out");
}
