// unhandled_exit: makes an access the VMM cannot complete. An x87 load (FLD m80) from MMIO
// that no device claims is outside what KVM's instruction emulator implements, so KVM stops
// the vCPU with an emulation failure; the VMM must report it (vCPU, RIP, instruction bytes)
// and exit 1 rather than hang. Debug-exits 3 (status 7) if the load somehow completes.
#include "runtime.h"

int GuestMain(const rt::BootInfo&) {
  rt::Printf("loading x87 from unclaimed MMIO\n");
  asm volatile("fninit; movl $0xf0000000, %%eax; fldt (%%rax); fstp %%st(0)" ::: "rax", "memory");
  rt::Printf("FAIL unhandled_exit: the load completed\n");
  return 3;
}
