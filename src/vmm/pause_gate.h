// PauseGate: parks a set of threads (the vCPUs) at a point of their choosing and lets them
// go again. The controller closes the gate and waits until every participant has parked;
// each participant checks closing() at its consistent point and calls Park().
//
// Kicks can be lost (a signal that lands just before a thread re-enters KVM_RUN is
// harmless only because immediate_exit is also set), so Close() re-kicks every
// kKickInterval until all have parked instead of trusting one kick.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>

#include "base/result.h"

namespace vireo {

class PauseGate {
 public:
  static constexpr std::chrono::milliseconds kKickInterval{10};

  // Asks every participant to park and waits for `participants` of them. On timeout or
  // Release() it reopens the gate and fails.
  Status Close(size_t participants, const std::function<void()>& kick,
               std::chrono::milliseconds timeout);
  // Closes the gate before any participant has started, so each parks at its first check
  // (a VM restored paused); a Close() that follows waits for them as usual.
  void Arm() { closed_.store(true, std::memory_order_seq_cst); }
  // Lets parked participants go on.
  void Open();
  // Opens the gate for good (the VM is stopping): Park() returns at once, Close() fails.
  void Release();

  // Participant side.
  bool closing() const { return closed_.load(std::memory_order_seq_cst); }
  // Blocks while the gate is closed and not released.
  void Park();
  size_t parked() const;

 private:
  std::atomic<bool> closed_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t parked_ = 0;      // guarded by mu_
  bool released_ = false;  // guarded by mu_
};

}  // namespace vireo
