#include "pit.h"

#include "io.h"

namespace rt {

namespace {
constexpr uint16_t kPitCh0 = 0x40;
constexpr uint16_t kPitCh2 = 0x42;
constexpr uint16_t kPitCmd = 0x43;
constexpr uint16_t kPortB = 0x61;  // bit 0: gate 2, bit 1: speaker, bit 5: OUT2

void LoadCount(uint16_t port, uint16_t count) {
  Outb(port, count & 0xff);
  Outb(port, count >> 8);
}
}  // namespace

void PitStartPeriodic(uint32_t hz) {
  uint32_t divisor = kPitHz / hz;
  if (divisor > 0xffff) divisor = 0xffff;
  if (divisor < 2) divisor = 2;
  Outb(kPitCmd, 0x34);  // channel 0, lobyte/hibyte, mode 2, binary
  LoadCount(kPitCh0, static_cast<uint16_t>(divisor));
}

void PitStop() {
  Outb(kPitCmd, 0x30);  // channel 0, lobyte/hibyte, mode 0
  LoadCount(kPitCh0, 0xffff);
}

bool PitChannel2OneShot(uint16_t ticks) {
  Outb(kPortB, (Inb(kPortB) & ~0x02) | 0x01);  // gate on, speaker off
  Outb(kPitCmd, 0xb0);                         // channel 2, lobyte/hibyte, mode 0
  LoadCount(kPitCh2, ticks);
  for (int i = 0; i < 2000000; ++i) {
    if (Inb(kPortB) & 0x20) return true;
  }
  return false;
}

}  // namespace rt
