// Intel 8254 PIT: channel 0 (IRQ0) as a periodic tick, channel 2 (gated via port 0x61) as a
// polled one-shot for calibration.
#pragma once

#include <stdint.h>

namespace rt {

inline constexpr uint32_t kPitHz = 1193182;

// Channel 0, mode 2 (rate generator) at `hz`.
void PitStartPeriodic(uint32_t hz);
// Channel 0 back to mode 0 with the longest count: effectively one more tick ~55 ms later.
void PitStop();
// Channel 2, mode 0: starts a `ticks` count and polls port 0x61 bit 5 (OUT2) until it fires.
// Returns false if it did not fire within a bounded number of polls.
bool PitChannel2OneShot(uint16_t ticks);

}  // namespace rt
