#include "vhost_user/call_interrupt.h"

#include <unistd.h>

namespace vireo::vhost_user {

void CallInterrupt::SetFd(uint16_t queue, int fd) {
  std::lock_guard lock(mu_);
  if (queue < fds_.size()) fds_[queue] = fd;
}

void CallInterrupt::SignalUsed(uint16_t queue_index) {
  std::lock_guard lock(mu_);
  if (queue_index >= fds_.size() || fds_[queue_index] < 0) return;
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: the front-end has a wake-up pending anyway.
  (void)!::write(fds_[queue_index], &one, sizeof(one));
  signals_.fetch_add(1, std::memory_order_relaxed);
}

void CallInterrupt::SignalConfigChange() {
  dropped_config_changes_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace vireo::vhost_user
