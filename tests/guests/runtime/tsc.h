// TSC timing: calibrated once against PIT channel 2, then used for delays and timeouts.
#pragma once

#include <stdint.h>

namespace rt {

// Measures TSC ticks per millisecond over a 10 ms PIT channel 2 one-shot (idempotent).
// Falls back to an assumed 2 GHz, with a message, if the PIT never signals.
uint64_t TscPerMs();
void DelayUs(uint64_t us);

// A deadline measured in TSC ticks.
class Deadline {
 public:
  static Deadline InMs(uint64_t ms);
  bool Expired() const;

 private:
  uint64_t end_ = 0;
};

}  // namespace rt
