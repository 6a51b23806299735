#include "vmm/pause_gate.h"

namespace vireo {

Status PauseGate::Close(size_t participants, const std::function<void()>& kick,
                        std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  if (released_) return Fail("the VM is stopping");
  closed_.store(true, std::memory_order_seq_cst);
  for (;;) {
    if (released_) break;
    if (parked_ >= participants) return {};
    if (std::chrono::steady_clock::now() >= deadline) break;
    lock.unlock();
    kick();
    lock.lock();
    cv_.wait_for(lock, kKickInterval, [&] { return released_ || parked_ >= participants; });
  }
  const size_t parked = parked_;
  closed_.store(false, std::memory_order_seq_cst);
  cv_.notify_all();
  if (released_) return Fail("the VM stopped while pausing");
  return Fail("only {} of {} vCPUs stopped within {} ms", parked, participants, timeout.count());
}

void PauseGate::Open() {
  std::lock_guard lock(mu_);
  closed_.store(false, std::memory_order_seq_cst);
  cv_.notify_all();
}

void PauseGate::Release() {
  std::lock_guard lock(mu_);
  released_ = true;
  closed_.store(false, std::memory_order_seq_cst);
  cv_.notify_all();
}

void PauseGate::Park() {
  std::unique_lock lock(mu_);
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return released_ || !closed_.load(std::memory_order_seq_cst); });
  --parked_;
}

size_t PauseGate::parked() const {
  std::lock_guard lock(mu_);
  return parked_;
}

}  // namespace vireo
