#include "base/deadline_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace vireo {

Result<DeadlineTimer> DeadlineTimer::Create(std::string_view what) {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!fd) return Fail("creating {}: {}", what, std::strerror(errno));
  return DeadlineTimer(std::move(fd), what);
}

void DeadlineTimer::Arm(uint64_t deadline_ns) {
  if (deadline_ns == armed_ns_) return;
  itimerspec spec{};  // all zero disarms
  if (deadline_ns != kNever) {
    spec.it_value.tv_sec = static_cast<time_t>(deadline_ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(deadline_ns % 1'000'000'000);
    if (deadline_ns == 0) spec.it_value.tv_nsec = 1;  // exactly 0 would disarm
  }
  if (::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    Log(LogLevel::kWarn, "arming {}: {}", what_, std::strerror(errno));
    return;
  }
  armed_ns_ = deadline_ns;
}

void DeadlineTimer::Expired() {
  uint64_t expirations = 0;
  (void)!::read(fd_.get(), &expirations, sizeof(expirations));  // non-blocking; may be 0
  armed_ns_ = kNever;
}

}  // namespace vireo
