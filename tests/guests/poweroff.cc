// poweroff: ACPI S5 through the FADT's PM1a_CNT with SLP_TYP from the DSDT's \_S5 package.
// Exit: the VMM exits with status 0 (powered off). If the VM is still running 100 ms after the
// write, debug-exit 3 (status 7); without ACPI tables, debug-exit 4 (status 9).
#include "runtime.h"

int GuestMain(const rt::BootInfo&) {
  if (!rt::AcpiAvailable()) rt::Fail("poweroff", 4, "no ACPI tables");
  rt::Printf("powering off via ACPI S5 (PM1a_CNT %#x, SLP_TYP %u)\n", rt::GetFadt().pm1a_cnt,
             rt::GetFadt().s5_slp_typ_a);
  rt::AcpiPoweroff();
  rt::Fail("poweroff", 3, "ACPI S5 did not power off");
}
