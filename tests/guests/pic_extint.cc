// pic_extint: the 8259A PICs (Intel 8259A datasheet) delivering the PIT's IRQ 0, first with the
// local APIC globally disabled (IA32_APIC_BASE bit 11 clear: the PIC's INT goes straight to the
// CPU, SDM Vol. 3 11.4.3), then with it enabled and LINT0 in ExtINT mode (the PC's virtual-wire
// mode, MP spec 3.6.2.2).
//
// Both PICs get ICW1-ICW4 with vector bases 0x40 / 0x48, the master's IRQ 0 alone unmasked,
// the PIT at 100 Hz. The handler reads the master's ISR (OCW3), sends a non-specific EOI (OCW2)
// and reads the ISR again; it never writes the LAPIC's EOI (an ExtINT interrupt is not in the
// LAPIC's ISR).
// 1. APIC disabled: 5 ticks at vector 0x40, ISR 0x01 in the handler and 0x00 after the EOI.
// 2. IRQ 0 masked in the IMR (OCW1): no tick for 30 ms, yet the IRR (OCW3) latches IRQ 0;
//    unmasking delivers it.
// 3. APIC enabled, LINT0 ExtINT: 5 ticks at vector 0x40, the LAPIC's ISR never shows 0x40.
// 4. LINT0 masked: no tick for 30 ms; unmasked: ticks again.
// Waits spin with interrupts on (no LAPIC timer to wake hlt in step 1).
//
// Prints "apic disabled (apic base 0x...)", "pic ticks, apic disabled: 5, vector 0x40",
// "pic isr in handler 0x01, after eoi 0x00", "imr masked: 0 ticks, irr 0x01",
// "imr unmasked: ticks again", "pic ticks, lint0 extint: 5, vector 0x40",
// "lapic isr during extint: 0", "lint0 masked: 0 ticks", "lint0 unmasked: ticks again",
// "spurious irq 7: N".
// Exit: debug-exit 0 (status 1) after "PASS pic_extint". Failures: 3 (status 7) no ticks with
// the APIC disabled, 4 (status 9) a wrong vector, 5 (status 11) wrong ISR reads, 6 (status 13)
// the IMR did not hold IRQ 0 back in the IRR, 7 (status 15) no ticks through LINT0 ExtINT,
// 8 (status 17) an ExtINT interrupt set the LAPIC's ISR, 9 (status 19) a masked LINT0 passed
// the PIC's interrupt, or unmasking it did not.
#include "runtime.h"

namespace {

constexpr uint16_t kMasterCmd = 0x20;
constexpr uint16_t kMasterData = 0x21;
constexpr uint16_t kSlaveCmd = 0xa0;
constexpr uint16_t kSlaveData = 0xa1;
constexpr uint8_t kMasterBase = 0x40;
constexpr uint8_t kSlaveBase = 0x48;
constexpr uint8_t kOcw3ReadIrr = 0x0a;
constexpr uint8_t kOcw3ReadIsr = 0x0b;
constexpr uint8_t kOcw2NonSpecificEoi = 0x20;
constexpr uint32_t kMsrApicBase = 0x1b;
constexpr uint64_t kApicBaseEnable = 1u << 11;
constexpr uint32_t kLapicTpr = 0x080;
constexpr uint32_t kLapicIsr = 0x100;
constexpr uint32_t kLvtExtInt = 7u << 8;
constexpr uint32_t kLvtNmi = 4u << 8;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr int kWanted = 5;

volatile int ticks;
volatile uint64_t bad_vector;
volatile uint8_t isr_in_handler;
volatile uint8_t isr_after_eoi;
volatile bool apic_on;
volatile int lapic_isr_seen;
volatile int spurious;

void OnTick(rt::InterruptFrame& f) {
  if (f.vector != kMasterBase) bad_vector = f.vector;
  rt::Outb(kMasterCmd, kOcw3ReadIsr);
  isr_in_handler = rt::Inb(kMasterCmd);
  if (apic_on &&
      ((rt::LapicRead(kLapicIsr + 0x10 * (kMasterBase / 32)) >> (kMasterBase % 32)) & 1)) {
    lapic_isr_seen = 1;
  }
  rt::Outb(kMasterCmd, kOcw2NonSpecificEoi);
  isr_after_eoi = rt::Inb(kMasterCmd);  // OCW3's register selection stays until changed
  ticks = ticks + 1;
}

// IRQ 7 with nothing in service: the 8259A's spurious interrupt, which takes no EOI.
void OnSpurious(rt::InterruptFrame&) { spurious = spurious + 1; }

// ICW1 (edge, cascade, ICW4), ICW2 (vector base), ICW3 (slave on IRQ 2), ICW4 (8086 mode),
// then OCW1: the master's mask as given, the slave all masked.
void PicInit(uint8_t master_mask) {
  rt::Outb(kMasterCmd, 0x11);
  rt::Outb(kSlaveCmd, 0x11);
  rt::Outb(kMasterData, kMasterBase);
  rt::Outb(kSlaveData, kSlaveBase);
  rt::Outb(kMasterData, 0x04);
  rt::Outb(kSlaveData, 0x02);
  rt::Outb(kMasterData, 0x01);
  rt::Outb(kSlaveData, 0x01);
  rt::Outb(kMasterData, master_mask);
  rt::Outb(kSlaveData, 0xff);
}

// Interrupts on until `ticks` reaches `wanted` or `ms` pass (a spin: hlt could wait forever).
bool WaitTicks(int wanted, uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (ticks < wanted) {
    if (d.Expired()) return false;
    rt::Sti();
    rt::Pause();
    rt::Cli();
  }
  return true;
}

void Quiet(uint64_t ms) {
  rt::Deadline d = rt::Deadline::InMs(ms);
  while (!d.Expired()) {
    rt::Sti();
    rt::Pause();
    rt::Cli();
  }
}

void CheckTicks(const char* how) {
  rt::Printf("pic ticks, %s: %d, vector %#x\n", how, ticks,
             static_cast<unsigned>(bad_vector ? bad_vector : kMasterBase));
  if (bad_vector) rt::Fail("pic_extint", 4, "the PIC's IRQ 0 arrived at the wrong vector");
  rt::Printf("pic isr in handler 0x%02x, after eoi 0x%02x\n", isr_in_handler, isr_after_eoi);
  if (isr_in_handler != 0x01 || isr_after_eoi != 0x00) {
    rt::Fail("pic_extint", 5, "the master's ISR did not read 0x01 in service and 0x00 after EOI");
  }
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  rt::TscPerMs();  // calibrate on PIT channel 2 before channel 0 runs
  rt::SetInterruptHandlerNoEoi(kMasterBase, OnTick);
  rt::SetInterruptHandlerNoEoi(kMasterBase + 7, OnSpurious);

  // 1. The local APIC globally disabled: the PIC is the CPU's only interrupt source.
  const uint64_t apic_base = rt::Rdmsr(kMsrApicBase);
  rt::Wrmsr(kMsrApicBase, apic_base & ~kApicBaseEnable);
  rt::Printf("apic disabled (apic base %#lx)\n", rt::Rdmsr(kMsrApicBase));
  PicInit(0xfe);
  rt::PitStartPeriodic(100);
  if (!WaitTicks(kWanted, 2000)) {
    rt::Fail("pic_extint", 3, "no PIC interrupts with the local APIC disabled");
  }
  CheckTicks("apic disabled");

  // 2. The IMR holds IRQ 0 back; its IRR bit stays latched until unmasked.
  rt::Outb(kMasterData, 0xff);
  int before = ticks;
  Quiet(30);
  rt::Outb(kMasterCmd, kOcw3ReadIrr);
  const uint8_t irr = rt::Inb(kMasterCmd);
  rt::Printf("imr masked: %d ticks, irr 0x%02x\n", ticks - before, irr);
  if (ticks != before || !(irr & 1)) {
    rt::Fail("pic_extint", 6, "a masked IRQ 0 was delivered, or not latched in the IRR");
  }
  rt::Outb(kMasterData, 0xfe);
  if (!WaitTicks(before + 1, 1000)) rt::Fail("pic_extint", 6, "unmasking IRQ 0 did not deliver");
  rt::Printf("imr unmasked: ticks again\n");

  // 3. The APIC enabled, the PIC through LINT0 in ExtINT mode (LINT1 NMI, as firmware sets).
  rt::Outb(kMasterData, 0xff);
  rt::Wrmsr(kMsrApicBase, apic_base);
  rt::LapicEnable();
  rt::LapicWrite(kLapicTpr, 0);
  rt::LapicWrite(rt::kLapicLvtLint0, kLvtExtInt);
  rt::LapicWrite(rt::kLapicLvtLint1, kLvtNmi);
  apic_on = true;
  ticks = 0;
  rt::Outb(kMasterData, 0xfe);
  if (!WaitTicks(kWanted, 2000)) rt::Fail("pic_extint", 7, "no PIC interrupts through LINT0");
  CheckTicks("lint0 extint");
  rt::Printf("lapic isr during extint: %d\n", lapic_isr_seen);
  if (lapic_isr_seen) rt::Fail("pic_extint", 8, "an ExtINT interrupt set the LAPIC's ISR");

  // 4. LINT0 masked: the PIC's INT goes nowhere until it is unmasked.
  rt::LapicWrite(rt::kLapicLvtLint0, kLvtExtInt | kLvtMasked);
  before = ticks;
  Quiet(30);
  rt::Printf("lint0 masked: %d ticks\n", ticks - before);
  if (ticks != before) rt::Fail("pic_extint", 9, "a masked LINT0 passed the PIC's interrupt");
  rt::LapicWrite(rt::kLapicLvtLint0, kLvtExtInt);
  if (!WaitTicks(before + 1, 1000)) rt::Fail("pic_extint", 9, "unmasking LINT0 did not deliver");
  rt::Printf("lint0 unmasked: ticks again\n");

  rt::Outb(kMasterData, 0xff);
  rt::PitStop();
  rt::Printf("spurious irq 7: %d\n", spurious);
  rt::Pass("pic_extint");
}
