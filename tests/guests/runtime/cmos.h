// CMOS RTC / NVRAM (MC146818): index port 0x70, data port 0x71. Bytes 0x0e-0x7f are NVRAM.
#pragma once

#include <stdint.h>

#include "io.h"

namespace rt {

// Bit 7 of the index would disable NMI on a PC; leave it clear so any VMM accepts the index.
inline uint8_t CmosRead(uint8_t index) {
  Outb(0x70, index & 0x7f);
  return Inb(0x71);
}
inline void CmosWrite(uint8_t index, uint8_t v) {
  Outb(0x70, index & 0x7f);
  Outb(0x71, v);
}

}  // namespace rt
