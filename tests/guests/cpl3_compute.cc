// cpl3_compute: proves CPL3 code runs (natively, on hosts where CPL0 is emulated) and returns a
// result to CPL0. Runs 2e8 xorshift64 steps (~1e9 instructions) at CPL3.
//
// Prints "user cs=0x.. cpl=3" (kvm_pvm reports its own user CS, 0x33), "returned via syscall" or
// "returned via ud2 trap", "result=0x<hex> expected=0x<hex>" and "cycles=<tsc ticks>".
// Exit: debug-exit 0 (status 1) after "PASS cpl3_compute"; 3 (status 7) if CS&3 != 3 was seen in
// user mode; 4 (status 9) if the result differs from the known value.
#include "runtime.h"

namespace {

// volatile: keeps the compiler from specialising Compute for a constant count.
volatile uint64_t iterations = 200'000'000;
// xorshift64 from seed 88172645463325252 after 2e8 steps, computed on the host.
constexpr uint64_t kExpected = 0x616c585103dbc732ull;

volatile uint16_t observed_cs;

uint64_t Compute(uint64_t iterations) {
  observed_cs = rt::CurrentCs();
  uint64_t x = 88172645463325252ull;
  for (uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

}  // namespace

int GuestMain(const rt::BootInfo&) {
  uint64_t start = rt::Rdtsc();
  uint64_t result = rt::RunAtCpl3(Compute, iterations);
  uint64_t cycles = rt::Rdtsc() - start;
  rt::Printf("user cs=%#x cpl=%u\n", observed_cs, observed_cs & 3);
  rt::Printf("returned via %s\n", rt::UserReturnUsesSyscall() ? "syscall" : "ud2 trap");
  rt::Printf("result=%#lx expected=%#lx\n", result, kExpected);
  rt::Printf("cycles=%lu\n", cycles);
  if ((observed_cs & 3) != 3) rt::Fail("cpl3_compute", 3, "user code did not run at CPL3");
  if (result != kExpected) rt::Fail("cpl3_compute", 4, "wrong result");
  rt::Pass("cpl3_compute");
}
