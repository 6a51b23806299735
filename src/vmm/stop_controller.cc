#include "vmm/stop_controller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace vireo {

StopController::StopController() : event_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

bool StopController::Request(RunOutcome outcome) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_.load(std::memory_order_relaxed)) return false;
    outcome_ = std::move(outcome);
    stopped_.store(true, std::memory_order_release);
  }
  if (on_stop_) on_stop_();
  uint64_t one = 1;
  if (event_fd_) (void)!::write(event_fd_.get(), &one, sizeof(one));
  return true;
}

RunOutcome StopController::outcome() const {
  std::lock_guard lock(mutex_);
  return outcome_;
}

void DeviceVmControl::RequestStop(StopKind kind, int exit_status) {
  switch (kind) {
    case StopKind::kPowerOff:
      controller_.Request({StopReason::kPowerOff, 0, source_});
      break;
    case StopKind::kReset:
      controller_.Request({StopReason::kReset, 0, source_});
      break;
    case StopKind::kDebugExit:
      controller_.Request({StopReason::kDebugExit, exit_status, source_});
      break;
  }
}

}  // namespace vireo
