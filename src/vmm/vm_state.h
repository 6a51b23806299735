// The control API's view of a VM's life: which state it is in, and which control action is
// allowed in which state. A pure function so the 409 cases are unit-tested without a VM.
#pragma once

#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace vireo {

enum class VmState {
  kRunning,       // vCPUs run the guest
  kPaused,        // every vCPU parked, device work drained and stopped
  kShuttingDown,  // the ACPI power button was pressed; the guest is expected to power off
  kStopping,      // a stop or reset was requested; the machine is going away (or rebooting)
};

enum class VmAction { kPause, kResume, kShutdown, kReset, kStop };

std::string_view VmStateName(VmState state);
std::string_view VmActionName(VmAction action);

// The state after `action`, or why `action` is refused in `state` (answered as HTTP 409).
tl::expected<VmState, std::string> Transition(VmState state, VmAction action);

}  // namespace vireo
