// A test-and-test-and-set spinlock for output and counters shared between CPUs.
#pragma once

namespace rt {

class Spinlock {
 public:
  void Lock() {
    while (__atomic_exchange_n(&locked_, 1, __ATOMIC_ACQUIRE)) {
      while (__atomic_load_n(&locked_, __ATOMIC_RELAXED)) asm volatile("pause");
    }
  }
  void Unlock() { __atomic_store_n(&locked_, 0, __ATOMIC_RELEASE); }

 private:
  int locked_ = 0;
};

class SpinlockGuard {
 public:
  explicit SpinlockGuard(Spinlock& l) : l_(l) { l_.Lock(); }
  ~SpinlockGuard() { l_.Unlock(); }
  SpinlockGuard(const SpinlockGuard&) = delete;
  SpinlockGuard& operator=(const SpinlockGuard&) = delete;

 private:
  Spinlock& l_;
};

}  // namespace rt
