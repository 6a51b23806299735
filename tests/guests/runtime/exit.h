// Ending the guest: the debug-exit port, and halting forever.
#pragma once

#include <stdint.h>

namespace rt {

// isa-debug-exit style port: a 32-bit write of v makes the VMM exit with status (v << 1) | 1.
inline constexpr uint16_t kDebugExitPort = 0xf4;

[[noreturn]] void DebugExit(uint32_t v);
[[noreturn]] void HaltForever();

}  // namespace rt
