#include "smp.h"

#include "acpi.h"
#include "apic.h"
#include "exit.h"
#include "idt.h"
#include "io.h"
#include "serial.h"
#include "tsc.h"

extern "C" char rt_ap_trampoline_start[];
extern "C" char rt_ap_trampoline_end[];
extern "C" uint64_t rt_ap_stack_top;  // read by ap_entry32 / ap_entry64 in entry.S
extern "C" void rt_ap_main64();

namespace rt {

namespace {

constexpr uint64_t kApStackSize = 16384;
__attribute__((section(".stack"), aligned(16))) uint8_t ap_stacks[kMaxCpus][kApStackSize];

ApFunction ap_function;
int ap_index;       // written by the BSP before each SIPI
int ap_checked_in;  // written by the AP once its function has returned (or is called)
bool ap_check_in_first;

}  // namespace

int StartAps(ApFunction fn, uint64_t timeout_ms, bool check_in_first) {
  ap_check_in_first = check_in_first;
  const Madt& m = GetMadt();
  uint32_t self = LapicId();
  uint64_t tramp_size = rt_ap_trampoline_end - rt_ap_trampoline_start;
  auto* dst = reinterpret_cast<volatile uint8_t*>(kTrampolinePage);
  for (uint64_t i = 0; i < tramp_size; ++i) dst[i] = rt_ap_trampoline_start[i];
  ap_function = fn;
  TscPerMs();  // calibrate before the INIT delay needs it
  int up = 1;
  for (int i = 0; i < m.cpu_count && up < kMaxCpus; ++i) {
    uint8_t apic_id = m.cpus[i].apic_id;
    if (apic_id == self) continue;
    ap_index = up;
    rt_ap_stack_top = reinterpret_cast<uint64_t>(ap_stacks[up] + kApStackSize);
    __atomic_store_n(&ap_checked_in, 0, __ATOMIC_SEQ_CST);
    if (!LapicStartAp(apic_id, static_cast<uint8_t>(kTrampolinePage >> 12))) {
      Printf("smp: IPIs to apic id %u were not delivered\n", apic_id);
    }
    Deadline d = Deadline::InMs(timeout_ms);
    while (!__atomic_load_n(&ap_checked_in, __ATOMIC_ACQUIRE) && !d.Expired()) Pause();
    if (__atomic_load_n(&ap_checked_in, __ATOMIC_ACQUIRE)) {
      ++up;
    } else {
      Printf("smp: apic id %u did not start within %lu ms\n", apic_id, timeout_ms);
    }
  }
  return up;
}

}  // namespace rt

extern "C" void rt_ap_main64() {
  using namespace rt;
  IdtLoad();
  // Check in only after fn (unless told otherwise): the BSP may end the VM as soon as every
  // AP has checked in.
  const int index = ap_index;  // the BSP moves on to the next AP once this one checks in
  const bool first = ap_check_in_first;
  if (first) __atomic_store_n(&ap_checked_in, 1, __ATOMIC_RELEASE);
  if (ap_function) ap_function(index);
  if (!first) __atomic_store_n(&ap_checked_in, 1, __ATOMIC_RELEASE);
  HaltForever();
}
