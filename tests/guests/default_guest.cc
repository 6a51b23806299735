// default_guest: what `vireo run` boots without --kernel (embedded in the vireo binary).
// A quick tour of the machine: banner, CPUs brought up, memory map, a short CPL3 computation,
// then ACPI S5 power-off, so the VMM exits with status 0. Must finish well under a second on a
// host that emulates CPL0.
// If power-off fails, debug-exit 3 (status 7).
#include "runtime.h"

namespace {

void ApMain(int index) {
  rt::SpinlockGuard g(rt::PrintLock());
  rt::Printf("  cpu %d (apic id %u) online\n", index, rt::LapicId());
}

uint64_t SumOfSquares(uint64_t n) {
  uint64_t s = 0;
  for (uint64_t i = 1; i <= n; ++i) s += i * i;
  return s;
}

const char* TypeName(uint32_t t) {
  switch (t) {
    case 1:
      return "ram";
    case 2:
      return "reserved";
    case 3:
      return "acpi";
    case 4:
      return "nvs";
    default:
      return "other";
  }
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  using rt::Printf;
  Printf("Vireo default guest\n");
  Printf("boot protocol: %s\n", rt::BootProtocolName(info.protocol));
  if (info.cmdline[0]) Printf("cmdline: %s\n", info.cmdline);

  int cpus = 1;
  if (rt::AcpiAvailable() && rt::GetMadt().cpu_count > 1) cpus = rt::StartAps(ApMain, 500);
  Printf("cpus: %d\n", cpus);

  uint64_t ram = 0;
  Printf("memory map:\n");
  for (int i = 0; i < info.memory_count; ++i) {
    const auto& m = info.memory[i];
    Printf("  0x%012lx-0x%012lx %8lu KiB %s\n", m.addr, m.addr + m.size - 1, m.size >> 10,
           TypeName(m.type));
    if (m.type == 1) ram += m.size;
  }
  Printf("ram: %lu MiB\n", ram >> 20);

  uint64_t start = rt::Rdtsc();
  uint64_t result = rt::RunAtCpl3(SumOfSquares, 1000000);
  Printf("cpl3: sum of squares 1..1000000 = %lu (%lu tsc cycles)\n", result, rt::Rdtsc() - start);

  Printf("powering off\n");
  rt::AcpiPoweroff();
  rt::Fail("default_guest", 3, "power-off failed");
}
