#include "accel/vcpu_exit.h"

namespace vireo::accel {

std::string_view ExitReasonName(ExitReason reason) {
  switch (reason) {
    case ExitReason::kIo:
      return "io";
    case ExitReason::kMmio:
      return "mmio";
    case ExitReason::kHalt:
      return "hlt";
    case ExitReason::kShutdown:
      return "shutdown";
    case ExitReason::kSystemReset:
      return "system_reset";
    case ExitReason::kSystemShutdown:
      return "system_shutdown";
    case ExitReason::kInterrupted:
      return "interrupted";
    case ExitReason::kInternalError:
      return "internal_error";
    case ExitReason::kFailEntry:
      return "fail_entry";
    case ExitReason::kDebug:
      return "debug";
    case ExitReason::kUnknown:
      return "unknown";
    case ExitReason::kCount:
      break;
  }
  return "invalid";
}

}  // namespace vireo::accel
