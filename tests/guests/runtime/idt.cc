#include "idt.h"

#include "apic.h"
#include "exit.h"
#include "serial.h"

extern "C" char rt_isr_stubs[];
extern "C" void rt_interrupt_dispatch(rt::InterruptFrame* f);
extern "C" char rt_user_exit_ud2[];
extern "C" [[noreturn]] void rt_user_return_from_trap(uint64_t result);

namespace rt {

namespace {

struct alignas(16) Gate {
  uint64_t lo, hi;
};

alignas(4096) Gate idt[256];
InterruptHandler handlers[256];
bool no_eoi[256];

constexpr uint16_t kKernelCs = 0x10;

// SDM Vol. 3A 6.14.1: 64-bit interrupt gate; type 0xE, present, DPL in bits 45-46.
Gate MakeGate(uint64_t target, int dpl) {
  Gate g;
  g.lo = (target & 0xffff) | (uint64_t{kKernelCs} << 16) |
         (static_cast<uint64_t>(0x8e | (dpl << 5)) << 40) | ((target >> 16) & 0xffff) << 48;
  g.hi = target >> 32;
  return g;
}

const char* const kExceptionNames[32] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                         "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "?15",
                                         "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?22", "?23",
                                         "?24", "?25", "?26", "?27", "#HV", "#VC", "#SX", "?31"};

}  // namespace

void IdtLoad() {
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } ptr = {sizeof(idt) - 1, reinterpret_cast<uint64_t>(idt)};
  asm volatile("lidt %0" ::"m"(ptr));
}

void IdtInit() {
  uint64_t stubs = reinterpret_cast<uint64_t>(rt_isr_stubs);
  for (int v = 0; v < 256; ++v) idt[v] = MakeGate(stubs + 16 * v, 0);
  IdtLoad();
}

void SetInterruptHandler(uint8_t vector, InterruptHandler h) {
  handlers[vector] = h;
  no_eoi[vector] = false;
}

void SetInterruptHandlerNoEoi(uint8_t vector, InterruptHandler h) {
  handlers[vector] = h;
  no_eoi[vector] = true;
}

void SetNmiHandler(InterruptHandler h) { handlers[2] = h; }

}  // namespace rt

extern "C" void rt_interrupt_dispatch(rt::InterruptFrame* f) {
  using namespace rt;
  // usermode.S's way back from CPL3 when syscall is unavailable: ud2 at a known address.
  if (f->vector == 6 && (f->cs & 3) == 3 &&
      f->rip == reinterpret_cast<uint64_t>(rt_user_exit_ud2)) {
    rt_user_return_from_trap(f->rax);
  }
  if (f->vector == 2 && handlers[2]) {  // NMI: no EOI (SDM Vol. 3 11.8.5)
    handlers[2](*f);
    return;
  }
  if (f->vector < 32) {
    uint64_t cr2;
    asm volatile("mov %%cr2, %0" : "=r"(cr2));
    Printf("exception %s vector=%lu rip=%#lx err=%#lx cs=%#lx rsp=%#lx cr2=%#lx\n",
           kExceptionNames[f->vector], f->vector, f->rip, f->error, f->cs, f->rsp, cr2);
    DebugExit(kExceptionExit);
  }
  if (f->vector == kSpuriousVector) return;  // SDM 10.9: no EOI for the spurious vector
  if (handlers[f->vector]) {
    handlers[f->vector](*f);
  } else {
    Printf("unexpected interrupt vector %lu\n", f->vector);
  }
  if (!no_eoi[f->vector]) LapicEoi();
}
