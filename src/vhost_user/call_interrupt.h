// QueueInterrupt for a vhost-user device: a used-buffer notification is a write to the ring's
// call eventfd, which the front-end turns into the guest's interrupt (an irqfd under KVM, an
// MSI-X message under TCG). The front-end may replace a call fd while the device runs (QEMU
// does, when the guest masks a vector), so the fds sit behind a mutex; SignalUsed never blocks
// because the fds are non-blocking (a saturated counter only drops a redundant wake-up).
//
// A configuration change would need the back-end request channel (BACKEND_REQ), which is not
// offered; it is counted and dropped.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "virtio/device.h"

namespace vireo::vhost_user {

class CallInterrupt : public virtio::QueueInterrupt {
 public:
  explicit CallInterrupt(uint16_t num_queues) : fds_(num_queues, -1) {}

  // The fd the next SignalUsed(queue) writes; -1 for none. The caller keeps owning it and may
  // close the previous one once this returns.
  void SetFd(uint16_t queue, int fd);

  void SignalUsed(uint16_t queue_index) override;
  void SignalConfigChange() override;

  uint64_t signals() const { return signals_.load(std::memory_order_relaxed); }
  uint64_t dropped_config_changes() const {
    return dropped_config_changes_.load(std::memory_order_relaxed);
  }

 private:
  std::mutex mu_;
  std::vector<int> fds_;  // guarded by mu_
  std::atomic<uint64_t> signals_{0};
  std::atomic<uint64_t> dropped_config_changes_{0};
};

}  // namespace vireo::vhost_user
