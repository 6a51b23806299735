// unclaimed_io: accesses where no device lives must read as all ones and swallow writes.
// Port 0x1234: 3 reads (byte, word, dword), 3 writes. MMIO 0xf0000000 (in the 32-bit hole, outside
// the PCI BAR window, below any Vireo device): 4 reads (8/16/32/64-bit), 4 writes.
//
// Prints one "pio"/"mmio" line per read with the value.
// Exit: debug-exit 0 (status 1) after "PASS unclaimed_io"; otherwise debug-exit with a bit mask
// of the failed reads (bit 0-2: pio byte/word/dword, bit 3-6: mmio 8/16/32/64), status
// ((mask << 1) | 1).
#include "runtime.h"

namespace {
constexpr uint16_t kPort = 0x1234;
constexpr uint64_t kMmio = 0xf0000000;
}  // namespace

int GuestMain(const rt::BootInfo&) {
  using rt::Printf;
  uint32_t failed = 0;
  uint8_t b = rt::Inb(kPort);
  uint16_t w = rt::Inw(kPort);
  uint32_t l = rt::Inl(kPort);
  Printf("pio inb(%#x)=%#x\npio inw(%#x)=%#x\npio inl(%#x)=%#x\n", kPort, b, kPort, w, kPort, l);
  if (b != 0xff) failed |= 1 << 0;
  if (w != 0xffff) failed |= 1 << 1;
  if (l != 0xffffffffu) failed |= 1 << 2;
  rt::Outb(kPort, 0x5a);
  rt::Outw(kPort, 0x5a5a);
  rt::Outl(kPort, 0x5a5a5a5a);

  uint8_t mb = rt::MmioRead<uint8_t>(kMmio);
  uint16_t mw = rt::MmioRead<uint16_t>(kMmio + 2);
  uint32_t ml = rt::MmioRead<uint32_t>(kMmio + 4);
  uint64_t mq = rt::MmioRead<uint64_t>(kMmio + 8);
  Printf("mmio read8=%#x\nmmio read16=%#x\nmmio read32=%#x\nmmio read64=%#lx\n", mb, mw, ml, mq);
  if (mb != 0xff) failed |= 1 << 3;
  if (mw != 0xffff) failed |= 1 << 4;
  if (ml != 0xffffffffu) failed |= 1 << 5;
  if (mq != ~0ull) failed |= 1 << 6;
  rt::MmioWrite<uint8_t>(kMmio, 0x5a);
  rt::MmioWrite<uint16_t>(kMmio + 2, 0x5a5a);
  rt::MmioWrite<uint32_t>(kMmio + 4, 0x5a5a5a5a);
  rt::MmioWrite<uint64_t>(kMmio + 8, 0x5a5a5a5a5a5a5a5aull);
  // The write must not have created memory there.
  if (rt::MmioRead<uint32_t>(kMmio + 4) != 0xffffffffu) failed |= 1 << 5;
  Printf("accesses: pio_read=3 pio_write=3 mmio_read=5 mmio_write=4\n");
  if (failed) {
    Printf("FAIL unclaimed_io: mask %#x\n", failed);
    return static_cast<int>(failed);
  }
  rt::Pass("unclaimed_io");
}
