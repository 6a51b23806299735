// How a VM run ended, and the process exit status that goes with it.
#pragma once

#include <string>

namespace vireo {

enum class StopReason {
  kPowerOff,   // ACPI S5 or KVM system event: exit status 0
  kDebugExit,  // isa-debug-exit: the guest's status
  kReset,      // guest reset: restart, or end with --no-reboot
  kSignal,     // SIGINT/SIGTERM: 128 + signal number
  kError,      // VMM error or an exit the VMM cannot handle: exit status 1
  kApiStop,    // the control API's stop: exit status 0, the guest is not asked
  kMigrated,   // live migration done, the destination runs the guest: exit status 0
};

struct RunOutcome {
  StopReason reason = StopReason::kError;
  int exit_status = 1;
  std::string detail;  // reset source, signal name or the diagnostic
};

}  // namespace vireo
