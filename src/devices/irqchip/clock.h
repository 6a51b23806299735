// The time source the interrupt-controller models read: injected, so a unit test steps a
// manual clock and every timer result is exact.
#pragma once

#include <chrono>
#include <cstdint>

namespace vireo::irqchip {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds on a monotonic time line; only differences matter.
  virtual uint64_t NowNs() const = 0;
};

class MonotonicClock final : public Clock {
 public:
  uint64_t NowNs() const override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
};

class ManualClock final : public Clock {
 public:
  uint64_t NowNs() const override { return now_; }
  void Advance(uint64_t ns) { now_ += ns; }
  void Set(uint64_t ns) { now_ = ns; }

 private:
  uint64_t now_ = 1'000'000'000;  // not zero, so "time 0" bugs show
};

// An interrupt message as the IOAPIC (or an MSI) puts it on the APIC bus (SDM Vol. 3 10.11,
// 82093AA 3.2.4).
struct ApicMessage {
  uint8_t vector = 0;
  uint8_t delivery_mode = 0;  // 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT
  bool logical = false;       // destination mode
  bool level = false;         // trigger mode
  uint32_t destination = 0;   // APIC ID (physical) or MDA (logical)
};

}  // namespace vireo::irqchip
