// The IDT: exception vectors print and exit; other vectors go to registered handlers.
#pragma once

#include <stdint.h>

namespace rt {

// The stack layout isr.S builds: GPRs, vector, error code, then the CPU's iret frame.
struct InterruptFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error;
  uint64_t rip, cs, rflags, rsp, ss;
};

using InterruptHandler = void (*)(InterruptFrame&);

inline constexpr uint8_t kSpuriousVector = 0xff;
// Exit value for an unexpected exception: the VMM exits with status 0xff.
inline constexpr uint32_t kExceptionExit = 0x7f;

// Builds the IDT and loads it on this CPU.
void IdtInit();
// Loads the already-built IDT (APs).
void IdtLoad();
// Installs `h` for `vector` (>= 32). External interrupts get a LAPIC EOI after `h` returns.
void SetInterruptHandler(uint8_t vector, InterruptHandler h);
// As SetInterruptHandler, but no LAPIC EOI follows: for interrupts the guest ends itself
// later (a level interrupt held in service) or that never reach the LAPIC's ISR (the 8259
// PIC's, directly or through LINT0 in ExtINT mode).
void SetInterruptHandlerNoEoi(uint8_t vector, InterruptHandler h);
// Installs `h` for NMI (vector 2), which otherwise ends the VM as an unexpected exception.
void SetNmiHandler(InterruptHandler h);

}  // namespace rt
