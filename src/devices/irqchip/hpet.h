// HPET, after the IA-PC HPET specification 1.0a (Intel, 2004): a 64-bit main counter at
// 10 MHz (like QEMU's) and three comparators behind a 1 KiB MMIO block at 0xfed00000
// (2.3, register map in table 2-1). Each timer is one-shot or periodic, edge or level,
// 64- or 32-bit, routed to an IOAPIC pin from its allowed-routes mask or, with the
// legacy-replacement bit set, timer 0 to ISA IRQ 0 and timer 1 to IRQ 8 (2.3.9.2.2).
// FSB (MSI) delivery is not offered.
//
// Like the PIT, nothing ticks: the counter is computed from the Clock when read, and Poll()
// raises the interrupts whose comparator the counter has reached since the previous poll
// (missed periods of a periodic timer are coalesced into one interrupt, the comparator
// moving to the first multiple of the period ahead of the counter). NextEventNs() says when
// the next match is due, so the caller arms one host timer for it.
//
// Plain state with no locking: the caller (HpetDevice) serialises every call.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "base/result.h"
#include "devices/irqchip/clock.h"

namespace vireo::irqchip {

// The HPET's snapshot state (a device record of the snapshot state file): the registers as
// the guest sees them, the main counter's value at the save (the counter stands still
// while the VM is saved, as the guest's TSC does, and runs on from it), and per timer the
// counter value from which its next match is searched and the level interrupt it holds.
struct HpetState {
  uint64_t config = 0;
  uint64_t int_status = 0;
  uint64_t counter = 0;
  struct Timer {
    uint64_t config = 0;  // the writable bits of the timer's configuration register
    uint64_t comparator = 0;
    uint64_t period = 0;
    uint64_t from = 0;
    bool line_high = false;
    uint32_t line = 0;
    bool line_legacy = false;
  };
  std::array<Timer, 3> timers{};
};

class Hpet {
 public:
  static constexpr uint64_t kBase = 0xfed00000;
  static constexpr uint64_t kSize = 0x400;
  static constexpr int kTimers = 3;
  static constexpr uint32_t kPeriodFs = 100'000'000;  // 10 MHz, as QEMU's
  // IOAPIC pins 20-23, free on Vireo's board (virtio-mmio and ISA use 0-15), as QEMU offers.
  static constexpr uint32_t kRouteCap = 0x00f00000;
  static constexpr uint32_t kLegacyIrq0 = 0;  // ISA IRQ of timer 0 in legacy replacement
  static constexpr uint32_t kLegacyIrq8 = 8;  // ... and of timer 1

  // Register offsets (table 2-1).
  static constexpr uint64_t kCapId = 0x000;
  static constexpr uint64_t kConfig = 0x010;
  static constexpr uint64_t kIntStatus = 0x020;
  static constexpr uint64_t kCounter = 0x0f0;
  static constexpr uint64_t kTimerBase = 0x100;  // timer n at kTimerBase + 0x20 * n
  static constexpr uint64_t kTimerStride = 0x20;
  static constexpr uint64_t kTimerConfig = 0x00;
  static constexpr uint64_t kTimerComparator = 0x08;
  static constexpr uint64_t kTimerFsbRoute = 0x10;

  // General configuration bits (2.3.5).
  static constexpr uint64_t kEnableCnf = 1u << 0;
  static constexpr uint64_t kLegRtCnf = 1u << 1;
  // Timer N configuration and capabilities bits (2.3.8).
  static constexpr uint64_t kTnIntTypeLevel = 1u << 1;
  static constexpr uint64_t kTnIntEnb = 1u << 2;
  static constexpr uint64_t kTnTypePeriodic = 1u << 3;
  static constexpr uint64_t kTnPerIntCap = 1u << 4;
  static constexpr uint64_t kTnSizeCap64 = 1u << 5;
  static constexpr uint64_t kTnValSet = 1u << 6;
  static constexpr uint64_t kTn32Mode = 1u << 8;
  static constexpr int kTnRouteShift = 9;
  static constexpr uint64_t kTnRouteMask = 0x1fu << kTnRouteShift;

  // `set_irq(line, level)` drives an interrupt line: an IOAPIC pin number for routed
  // timers, or kLegacyIrq0/kLegacyIrq8 (ISA IRQ numbers) in legacy replacement; the caller
  // maps them to its GSIs. `legacy_changed(on)` runs when LEG_RT_CNF (with ENABLE_CNF)
  // takes or gives up IRQ 0 and IRQ 8, so the caller silences the PIT's output meanwhile.
  struct Callbacks {
    std::function<void(uint32_t line, bool is_legacy, bool level)> set_irq;
    std::function<void(bool on)> legacy_changed;
  };
  Hpet(const Clock& clock, Callbacks callbacks);

  // `size` 1, 2, 4 or 8 bytes at `offset` within the block; 4-byte halves of the 64-bit
  // registers read and write their half.
  uint64_t Read(uint64_t offset, uint32_t size) const;
  void Write(uint64_t offset, uint32_t size, uint64_t value);

  // Raises the interrupts of the comparators the counter has reached.
  void Poll();
  // The Clock time of the next comparator match with its interrupt enabled; UINT64_MAX
  // when none is due (counter halted, no timer enabled).
  uint64_t NextEventNs() const;

  HpetState SaveState() const;
  // Validates like the guest's writes (routes within the allowed mask, the counter's and
  // comparators' widths) and re-asserts the level interrupts the saved HPET held. The
  // legacy-replacement callback does not run: the PIT's connection is part of the VM's
  // saved state.
  Status RestoreState(const HpetState& state);

  uint64_t counter() const;
  bool legacy_active() const {
    return (config_ & (kEnableCnf | kLegRtCnf)) == (kEnableCnf | kLegRtCnf);
  }

 private:
  struct Timer {
    uint64_t config = 0;      // writable bits only; capabilities are added on read
    uint64_t comparator = 0;  // masked to 32 bits in 32-bit mode
    uint64_t period = 0;      // periodic mode: what each match adds to the comparator
    uint64_t from = 0;        // matches at counter values >= from are still to come
    bool line_high = false;   // a level interrupt is held on `line`
    uint32_t line = 0;
    bool line_legacy = false;
  };

  uint64_t ReadRegister(uint64_t reg) const;
  void WriteRegister(uint64_t reg, uint64_t value, uint64_t mask);
  void WriteTimerConfig(int n, uint64_t value);
  void WriteComparator(int n, uint64_t value, uint64_t mask);
  // The first counter value >= t.from at which timer n matches; UINT64_MAX for none.
  uint64_t NextMatch(int n) const;
  void Fire(int n);
  void Lower(int n);
  // Where timer n's interrupt goes now: {line, is_legacy}.
  std::pair<uint32_t, bool> Route(int n) const;
  bool TimerLive(int n) const;
  // Restarts every timer's match search at the current counter.
  void Rearm();

  const Clock& clock_;
  Callbacks callbacks_;
  uint64_t config_ = 0;
  uint64_t int_status_ = 0;
  uint64_t counter_base_ = 0;  // the counter when halted, or at enable_ns_ when running
  uint64_t enable_ns_ = 0;
  std::array<Timer, kTimers> timers_{};
};

}  // namespace vireo::irqchip
