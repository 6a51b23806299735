// serial_input: UART receive interrupts. Enables IER "received data available" and MCR OUT2,
// routes ISA IRQ4 through the IOAPIC, and hlt-waits for bytes until a '\n'.
//
// Prints "got: <line>" and "rx interrupts: N".
// Exit: debug-exit (sum of the line's bytes, '\n' excluded) & 0x7f, so status
// (((sum & 0x7f) << 1) | 1); 0x7e (status 253) if no full line arrived in 10 s; 0x7d
// (status 251) if IRQ4 has no route.
#include "runtime.h"

namespace {

constexpr uint8_t kUartVector = 0x34;
constexpr int kMaxLine = 256;

volatile char line[kMaxLine];
volatile int line_len;
volatile bool line_done;
volatile int rx_interrupts;

void OnUart(rt::InterruptFrame&) {
  rx_interrupts = rx_interrupts + 1;
  rt::Inb(rt::kCom1 + rt::kUartIir);  // identify (and so acknowledge) the interrupt
  // Drain everything so the (edge-triggered) line drops and the next byte makes a new edge.
  for (int i = 0; i < 64 && (rt::Inb(rt::kCom1 + rt::kUartLsr) & rt::kLsrDataReady); ++i) {
    char c = static_cast<char>(rt::Inb(rt::kCom1 + rt::kUartRbr));
    if (line_done) continue;
    if (c == '\n') {
      line_done = true;
    } else if (c != '\r' && line_len < kMaxLine - 1) {
      line[line_len] = c;
      line_len = line_len + 1;
    }
  }
}

void OnWatchdog(rt::InterruptFrame&) {}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  rt::LapicEnable();
  uint8_t self = static_cast<uint8_t>(rt::LapicId());
  rt::SetInterruptHandler(kUartVector, OnUart);
  rt::SetInterruptHandler(0x35, OnWatchdog);
  if (rt::RouteIsaIrq(4, kUartVector, self) < 0) rt::Fail("serial_input", 0x7d, "no IRQ4 route");
  rt::Outb(rt::kCom1 + rt::kUartMcr, 0x0b);  // DTR | RTS | OUT2 (gates the IRQ on a PC)
  rt::Outb(rt::kCom1 + rt::kUartIer, 0x01);  // received data available
  rt::Printf("waiting for a line on COM1\n");

  // A 10 ms LAPIC watchdog keeps hlt waking so the deadline is checked.
  rt::LapicTimerStart(0x35, 625000, true);
  rt::Deadline d = rt::Deadline::InMs(10000);
  while (!line_done && !d.Expired()) {
    rt::StiHlt();
    rt::Cli();
  }
  rt::LapicTimerStop();
  rt::Outb(rt::kCom1 + rt::kUartIer, 0x00);
  line[line_len] = 0;
  rt::Printf("got: %s\n", const_cast<const char*>(line));
  rt::Printf("rx interrupts: %d\n", rx_interrupts);
  if (!line_done) rt::Fail("serial_input", 0x7e, "no complete line within 10 s");
  uint32_t sum = 0;
  for (int i = 0; i < line_len; ++i) sum += static_cast<uint8_t>(line[i]);
  return static_cast<int>(sum & 0x7f);
}
