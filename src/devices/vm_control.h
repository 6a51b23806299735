// How a device asks the VMM to end or restart the VM (ACPI S5, i8042 reset, debug-exit),
// without seeing the VM itself.
#pragma once

namespace vireo {

enum class StopKind {
  kPowerOff,   // guest powered off: exit status 0
  kReset,      // guest asked for a reboot
  kDebugExit,  // isa-debug-exit: exit status (value << 1) | 1
};

class VmControl {
 public:
  virtual ~VmControl() = default;
  // Async: records the request and kicks every vCPU; the first request wins.
  virtual void RequestStop(StopKind kind, int exit_status) = 0;
};

}  // namespace vireo
