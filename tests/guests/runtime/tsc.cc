#include "tsc.h"

#include "io.h"
#include "pit.h"
#include "serial.h"

namespace rt {

namespace {
uint64_t tsc_per_ms = 0;
}

uint64_t TscPerMs() {
  if (tsc_per_ms) return tsc_per_ms;
  constexpr uint16_t kTicks = kPitHz / 100;  // 10 ms
  uint64_t start = Rdtsc();
  bool done = PitChannel2OneShot(kTicks);
  uint64_t elapsed = Rdtsc() - start;
  if (!done || elapsed < 10) {
    Printf("tsc: PIT channel 2 did not fire; assuming 2 GHz\n");
    tsc_per_ms = 2000000;
  } else {
    tsc_per_ms = elapsed / 10;
  }
  return tsc_per_ms;
}

void DelayUs(uint64_t us) {
  uint64_t end = Rdtsc() + TscPerMs() * us / 1000;
  while (Rdtsc() < end) Pause();
}

Deadline Deadline::InMs(uint64_t ms) {
  Deadline d;
  d.end_ = Rdtsc() + TscPerMs() * ms;
  return d;
}

bool Deadline::Expired() const { return Rdtsc() >= end_; }

}  // namespace rt
