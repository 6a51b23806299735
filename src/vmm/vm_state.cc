#include "vmm/vm_state.h"

namespace vireo {

std::string_view VmStateName(VmState state) {
  switch (state) {
    case VmState::kRunning:
      return "running";
    case VmState::kPaused:
      return "paused";
    case VmState::kShuttingDown:
      return "shutting_down";
    case VmState::kStopping:
      return "stopping";
  }
  return "unknown";
}

std::string_view VmActionName(VmAction action) {
  switch (action) {
    case VmAction::kPause:
      return "pause";
    case VmAction::kResume:
      return "resume";
    case VmAction::kShutdown:
      return "shutdown";
    case VmAction::kReset:
      return "reset";
    case VmAction::kStop:
      return "stop";
  }
  return "unknown";
}

tl::expected<VmState, std::string> Transition(VmState state, VmAction action) {
  using Refused = tl::unexpected<std::string>;
  // Nothing can be done to a machine that is already going away: the next boot (after a
  // reset) or the process exit (after a stop) decides what comes next.
  if (state == VmState::kStopping) return Refused("the VM is stopping or restarting");
  switch (action) {
    case VmAction::kPause:
      if (state == VmState::kPaused) return Refused("the VM is already paused");
      // A guest in the middle of its shutdown is left to finish it.
      if (state == VmState::kShuttingDown) return Refused("the VM is shutting down");
      return VmState::kPaused;
    case VmAction::kResume:
      if (state != VmState::kPaused) return Refused("the VM is not paused");
      return VmState::kRunning;
    case VmAction::kShutdown:
      // A paused guest cannot see the power button; asking would look like a hang.
      if (state == VmState::kPaused) return Refused("the VM is paused; resume it first");
      if (state == VmState::kShuttingDown) return Refused("a shutdown is already in progress");
      return VmState::kShuttingDown;
    case VmAction::kReset:
    case VmAction::kStop:
      return VmState::kStopping;  // from running, paused or shutting down alike
  }
  return Refused("unknown action");
}

}  // namespace vireo
