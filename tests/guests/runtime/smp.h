// Bringing up the application processors listed in the MADT with INIT-SIPI-SIPI.
#pragma once

#include <stdint.h>

namespace rt {

// The real-mode trampoline page: 0x10000 is free RAM in Vireo's map (below it: boot info,
// zero page, page tables; above it: the command line at 0x20000).
inline constexpr uint64_t kTrampolinePage = 0x10000;
inline constexpr int kMaxCpus = 16;

// Runs on each AP once it reaches 64-bit mode with its own stack; `index` is 1..N-1.
using ApFunction = void (*)(int index);

// Starts every enabled MADT processor other than this one, one at a time, waiting up to
// `timeout_ms` for each to run `fn` (so keep it short) and check in; it then halts with
// interrupts off. With `check_in_first`, an AP checks in before it calls `fn`, so `fn` may
// run long, alongside the BSP and the other APs.
// Returns the number of CPUs up, this one included.
int StartAps(ApFunction fn, uint64_t timeout_ms, bool check_in_first = false);

}  // namespace rt
