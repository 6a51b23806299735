// A one-shot timerfd on CLOCK_MONOTONIC armed at absolute deadlines in nanoseconds: how the
// timer models (PIT, HPET), which answer "my next event is at T", get woken at T. The fd is
// polled by the owner's event loop or thread. Not thread-safe: the owner serialises Arm and
// Expired under its own lock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo {

class DeadlineTimer {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // `what` names the timer in errors and warnings ("the PIT's timerfd").
  static Result<DeadlineTimer> Create(std::string_view what);

  int fd() const { return fd_.get(); }
  // Arms the timer for `deadline_ns` on CLOCK_MONOTONIC (a past deadline fires at once), or
  // disarms it with kNever. No system call when the deadline is the one already armed. A
  // failure is logged as a warning: the model then runs late rather than stopping the VM.
  void Arm(uint64_t deadline_ns);
  // The fd polled readable: consumes the expiration, so the next Arm re-arms whatever its
  // deadline (even the same one again).
  void Expired();

 private:
  DeadlineTimer(UniqueFd fd, std::string_view what) : fd_(std::move(fd)), what_(what) {}

  UniqueFd fd_;
  std::string what_;
  uint64_t armed_ns_ = kNever;
};

}  // namespace vireo
