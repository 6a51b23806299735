// Running a function at CPL3 and getting its result back (usermode.S does the switch).
#pragma once

#include <stdint.h>

namespace rt {

inline constexpr uint16_t kUserCs = 0x2b;
inline constexpr uint16_t kUserDs = 0x23;

using UserFunction = uint64_t (*)(uint64_t);

// Installs the TSS (rsp0 = a dedicated kernel stack for interrupts at CPL3), loads TR and
// enables syscall (the way back from CPL3) if CPUID offers it, else the ud2 fallback is used.
// Called once, on the BSP.
void UsermodeInit();

// Runs fn(arg) at CPL3 on the user stack and returns its result. fn may not do I/O or
// privileged instructions (they fault, and the fault handler ends the VM).
uint64_t RunAtCpl3(UserFunction fn, uint64_t arg);

// True when RunAtCpl3 returns with syscall rather than the ud2 trap.
bool UserReturnUsesSyscall();

// Readable at CPL3: the current privilege level from CS.
inline uint16_t CurrentCs() {
  uint16_t cs;
  asm volatile("mov %%cs, %0" : "=r"(cs));
  return cs;
}

}  // namespace rt
