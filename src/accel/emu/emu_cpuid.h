// The CPUID table the software CPU offers: only features it emulates, so a guest that
// trusts CPUID never reaches an instruction we do not have.
#pragma once

#include <vector>

#include "accel/cpu_state.h"

namespace vireo::emu {

std::vector<accel::CpuidEntry> SupportedCpuid();

}  // namespace vireo::emu
