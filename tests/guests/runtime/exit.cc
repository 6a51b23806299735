#include "exit.h"

#include "io.h"
#include "serial.h"

namespace rt {

void HaltForever() {
  for (;;) asm volatile("cli; hlt");
}

void DebugExit(uint32_t v) {
  Outl(kDebugExitPort, v);
  // Only reached when no debug-exit device exists; say so instead of hanging silently.
  SerialWrite("debug-exit port did not end the VM; halting\n");
  HaltForever();
}

}  // namespace rt
