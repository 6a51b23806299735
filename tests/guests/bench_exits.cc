// bench_exits: the guest side of bench/run.sh's exit round-trip and idle-memory cases.
//
// What it does is set by `vireo_bench_params`, which the host patches in a copy of this ELF
// (bench/vmm_probe finds the 16-byte magic and rewrites mode and count), so one image serves
// every VMM without a command line:
//   mode 0 (none)       print "bench none" and exit: the boot-only baseline
//   mode 1 (idle)       print "idle" and halt with interrupts off, forever (the host kills it)
//   mode 2 (pio_cpl0)   `count` outb to port 0x1234 (no device there) at CPL0
//   mode 3 (pio_cpl3)   the same at CPL3, allowed by a TSS I/O bitmap
//   mode 4 (mmio_cpl0)  `count` 32-bit reads of 0xf0000000 (unclaimed MMIO hole) at CPL0
//   mode 5 (mmio_cpl3)  the same at CPL3 (the identity map is user-accessible)
// The loop modes print "bench <mode> n=<count> cycles=<tsc ticks for the loop>" and exit 0
// (status 1). An unknown mode exits 3 (status 7).
//
// CPL3 port access uses the TSS I/O bitmap, not RFLAGS.IOPL: rt::RunAtCpl3 enters with IOPL 0,
// and kvm_pvm ignores IOPL=3 for guest CPL3 anyway, while it honours the bitmap.
#include "runtime.h"

extern "C" uint64_t rt_gdt[];

namespace {

enum Mode : uint32_t { kNone, kIdle, kPioCpl0, kPioCpl3, kMmioCpl0, kMmioCpl3, kModeCount };
const char* const kModeNames[kModeCount] = {"none",     "idle",      "pio_cpl0",
                                            "pio_cpl3", "mmio_cpl0", "mmio_cpl3"};

constexpr uint16_t kPort = 0x1234;
constexpr uint64_t kMmio = 0xf0000000;

struct BenchParams {
  char magic[16];
  uint32_t mode;
  uint32_t count;
};

// SDM Vol. 3A 7.7 / Vol. 1 19.5.2: a 64-bit TSS followed by a full I/O permission bitmap (one
// bit per port, 0 = allowed) and the mandatory 0xff byte after it.
struct __attribute__((packed)) IoTss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
  uint8_t bitmap[8192];
  uint8_t terminator;
};

alignas(16) IoTss io_tss;
__attribute__((section(".stack"), aligned(16))) uint8_t io_tss_kernel_stack[16384];

// Replaces the runtime's TSS (GDT slot 6, selector 0x30) with one that lets CPL3 use every
// port. rsp0 gets a stack of its own so interrupts and faults at CPL3 still have one.
void AllowPortsAtCpl3() {
  io_tss.rsp[0] = reinterpret_cast<uint64_t>(io_tss_kernel_stack + sizeof(io_tss_kernel_stack));
  io_tss.iomap_base = __builtin_offsetof(IoTss, bitmap);
  io_tss.terminator = 0xff;  // .bss left the bitmap all zeros: every port allowed
  uint64_t base = reinterpret_cast<uint64_t>(&io_tss);
  uint64_t limit = sizeof(IoTss) - 1;
  // Available 64-bit TSS (type 9): ltr refuses the busy type the old descriptor now has.
  rt_gdt[6] = (limit & 0xffff) | (base & 0xffffff) << 16 | uint64_t{0x89} << 40 |
              ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
  rt_gdt[7] = base >> 32;
  asm volatile("ltr %0" ::"r"(uint16_t{0x30}));
}

uint64_t PioLoop(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) rt::Outb(kPort, 0);
  return n;
}

// The sum keeps the loads' results live, so the loop is the same 5 instructions whether it is
// inlined (CPL0) or called through RunAtCpl3 (CPL3), and the same as raw_exit_floor's.
volatile uint64_t mmio_sink;

uint64_t MmioLoop(uint64_t n) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum += rt::MmioRead<uint32_t>(kMmio);
  return sum;
}

}  // namespace

// extern "C" and used: bench/vmm_probe finds it by its magic in the file, so it must survive
// in .data exactly as declared.
extern "C" {
__attribute__((used)) volatile BenchParams vireo_bench_params = {"VIREO_BENCH_PRM", kNone, 0};
}

int GuestMain(const rt::BootInfo&) {
  uint32_t mode = vireo_bench_params.mode;
  uint64_t n = vireo_bench_params.count;
  if (mode >= kModeCount) {
    rt::Printf("bench: unknown mode %u\n", mode);
    return 3;
  }
  if (mode == kIdle) {
    rt::Printf("idle\n");
    rt::HaltForever();  // cli; hlt: with an in-kernel irqchip this blocks in the kernel
  }
  if (mode == kPioCpl3) AllowPortsAtCpl3();
  uint64_t start = rt::Rdtsc();
  switch (mode) {
    case kPioCpl0:
      PioLoop(n);
      break;
    case kPioCpl3:
      rt::RunAtCpl3(PioLoop, n);
      break;
    case kMmioCpl0:
      mmio_sink = MmioLoop(n);
      break;
    case kMmioCpl3:
      rt::RunAtCpl3(MmioLoop, n);
      break;
    default:
      break;
  }
  uint64_t cycles = rt::Rdtsc() - start;
  rt::Printf("bench %s n=%lu cycles=%lu\n", kModeNames[mode], n, cycles);
  return 0;
}
