// reboot: resets the machine by the method named on the command line (reboot=kbd | acpi |
// triple; default kbd) and checks it came back, using CMOS NVRAM byte 0x50 as a boot counter
// (the RTC's NVRAM survives a guest-initiated reset).
//
// Boot 1 (counter 0): prints "boot 1: resetting via X", sets the counter to 1, resets.
// Boot 2 (counter 1): clears the counter, prints "rebooted via X", debug-exit 2 (status 5).
// Failures: debug-exit 3 (status 7) if the reset did not happen; 4 (status 9) if the counter
// held an unexpected value (it is cleared, so a rerun starts clean); 5 (status 11) for an
// unknown reboot= value.
#include "runtime.h"

namespace {
constexpr uint8_t kBootCounter = 0x50;
}

int GuestMain(const rt::BootInfo& info) {
  char method[16] = "kbd";
  rt::CmdlineValue(info, "reboot", method, sizeof(method));
  rt::ResetMethod m;
  if (!__builtin_strcmp(method, "kbd")) {
    m = rt::ResetMethod::kKeyboard;
  } else if (!__builtin_strcmp(method, "acpi")) {
    m = rt::ResetMethod::kAcpi;
  } else if (!__builtin_strcmp(method, "triple")) {
    m = rt::ResetMethod::kTripleFault;
  } else {
    rt::Fail("reboot", 5, "unknown reboot= method");
  }

  uint8_t counter = rt::CmosRead(kBootCounter);
  if (counter == 0) {
    rt::CmosWrite(kBootCounter, 1);
    rt::Printf("boot 1: resetting via %s\n", method);
    rt::Reset(m);
    rt::CmosWrite(kBootCounter, 0);
    rt::Fail("reboot", 3, "the reset did not happen");
  }
  rt::CmosWrite(kBootCounter, 0);
  if (counter != 1) {
    rt::Printf("boot counter was %u\n", counter);
    rt::Fail("reboot", 4, "unexpected boot counter");
  }
  rt::Printf("rebooted via %s\n", method);
  return 2;
}
