// Ending or restarting the machine the way an OS does: ACPI S5, and three reset methods.
#pragma once

namespace rt {

enum class ResetMethod { kKeyboard, kAcpi, kTripleFault };

// Writes SLP_TYPa(\_S5) | SLP_EN to PM1a_CNT (ACPI 6.x 7.4.2 / 4.8.3.2.1). Returns only if the
// VM is still running 100 ms later.
void AcpiPoweroff();

// kKeyboard: i8042 command 0xFE (pulse reset line). kAcpi: FADT RESET_REG (else port 0xcf9 = 6).
// kTripleFault: load an empty IDT and raise an exception. Returns only if the VM kept running.
void Reset(ResetMethod m);

}  // namespace rt
