// MSR access by index, shared by RDMSR/WRMSR (insn_privileged.cc) and the accelerator's
// Get/SetMsrs, so the VMM and the guest see the same rules.
#pragma once

#include <cstdint>

namespace vireo::emu {

class Interpreter;

// False: the MSR is not emulated (#GP for the guest).
bool ReadMsr(Interpreter& cpu, uint32_t index, uint64_t* value);
// False: unknown MSR or a value it refuses (#GP(0) for the guest).
bool WriteMsr(Interpreter& cpu, uint32_t index, uint64_t value);

}  // namespace vireo::emu
