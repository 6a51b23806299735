#include "power.h"

#include "acpi.h"
#include "io.h"
#include "serial.h"
#include "tsc.h"

namespace rt {

namespace {
constexpr uint16_t kSlpEn = 1 << 13;

void WaitForEnd() {
  Deadline d = Deadline::InMs(100);
  while (!d.Expired()) Pause();
}
}  // namespace

void AcpiPoweroff() {
  const Fadt& f = GetFadt();
  if (!AcpiAvailable() || !f.pm1a_cnt) {
    Printf("poweroff: no PM1a_CNT in the FADT\n");
    return;
  }
  // Without a \_S5 object, 0 is the usual SLP_TYP for S5 on PIIX4-like chipsets.
  uint16_t slp_typ = f.s5_found ? f.s5_slp_typ_a : 0;
  uint16_t cnt = Inw(f.pm1a_cnt);
  Outw(f.pm1a_cnt, static_cast<uint16_t>((cnt & ~(7 << 10)) | (slp_typ & 7) << 10 | kSlpEn));
  if (f.pm1b_cnt) {
    uint16_t b = f.s5_found ? f.s5_slp_typ_b : 0;
    Outw(f.pm1b_cnt, static_cast<uint16_t>((b & 7) << 10 | kSlpEn));
  }
  WaitForEnd();
  Printf("poweroff: still running after writing PM1a_CNT %#x\n", f.pm1a_cnt);
}

void Reset(ResetMethod m) {
  switch (m) {
    case ResetMethod::kKeyboard:
      // Wait (bounded) for the i8042 input buffer to drain before the command.
      for (int i = 0; i < 10000 && (Inb(0x64) & 0x02); ++i) Pause();
      Outb(0x64, 0xfe);
      break;
    case ResetMethod::kAcpi: {
      const Fadt& f = GetFadt();
      if (AcpiAvailable() && f.reset_supported && f.reset_space == 1 && f.reset_addr) {
        Outb(static_cast<uint16_t>(f.reset_addr), f.reset_value);
      } else {
        Printf("reset: no I/O RESET_REG in the FADT; using port 0xcf9\n");
        Outb(0xcf9, 0x06);
      }
      break;
    }
    case ResetMethod::kTripleFault: {
      struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
      } empty = {0, 0};
      // A fault (#UD), not a software interrupt: kvm_pvm reports `int3` through an empty
      // IDT as an emulation failure, while a fault escalates to #DF and a triple fault.
      asm volatile("cli; lidt %0; ud2" ::"m"(empty));
      break;
    }
  }
  WaitForEnd();
  Printf("reset: still running\n");
}

}  // namespace rt
