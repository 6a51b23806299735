#include "devices/irqchip/hpet.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace vireo::irqchip {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kFsPerNs = 1'000'000;
constexpr uint64_t kLow32 = 0xffffffffULL;

uint64_t NsToTicks(uint64_t ns) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * kFsPerNs / Hpet::kPeriodFs);
}
// The first ns at which NsToTicks reaches `ticks`, saturating.
uint64_t TicksToNs(uint64_t ticks) {
  const unsigned __int128 ns =
      (static_cast<unsigned __int128>(ticks) * Hpet::kPeriodFs + kFsPerNs - 1) / kFsPerNs;
  return ns > kNever ? kNever : static_cast<uint64_t>(ns);
}

}  // namespace

Hpet::Hpet(const Clock& clock, Callbacks callbacks)
    : clock_(clock), callbacks_(std::move(callbacks)) {}

uint64_t Hpet::counter() const {
  if (!(config_ & kEnableCnf)) return counter_base_;
  return counter_base_ + NsToTicks(clock_.NowNs() - enable_ns_);
}

uint64_t Hpet::Read(uint64_t offset, uint32_t size) const {
  const uint64_t shift = (offset & 7) * 8;
  if (size == 0 || size > 8 || (offset & 7) + size > 8 || offset >= kSize) return 0;
  const uint64_t value = ReadRegister(offset & ~uint64_t{7}) >> shift;
  return size == 8 ? value : value & ((uint64_t{1} << (size * 8)) - 1);
}

void Hpet::Write(uint64_t offset, uint32_t size, uint64_t value) {
  // Accesses that straddle two registers are ignored (the spec allows 32 and 64 bits only).
  if (size == 0 || size > 8 || (offset & 7) + size > 8 || offset >= kSize) return;
  const uint64_t shift = (offset & 7) * 8;
  const uint64_t lanes = size == 8 ? ~uint64_t{0} : (uint64_t{1} << (size * 8)) - 1;
  WriteRegister(offset & ~uint64_t{7}, value << shift, lanes << shift);
}

uint64_t Hpet::ReadRegister(uint64_t reg) const {
  switch (reg) {
    case kCapId:
      // 2.3.4: REV_ID 1, NUM_TIM_CAP = timers - 1, 64-bit counter, legacy replacement
      // capable, vendor 0x8086, COUNTER_CLK_PERIOD in femtoseconds.
      return 0x01 | uint64_t{kTimers - 1} << 8 | 1u << 13 | 1u << 15 | uint64_t{0x8086} << 16 |
             uint64_t{kPeriodFs} << 32;
    case kConfig:
      return config_;
    case kIntStatus:
      return int_status_;
    case kCounter:
      return counter();
    default:
      break;
  }
  if (reg < kTimerBase || reg >= kTimerBase + kTimers * kTimerStride) return 0;
  const Timer& t = timers_[(reg - kTimerBase) / kTimerStride];
  switch ((reg - kTimerBase) % kTimerStride) {
    case kTimerConfig:
      return t.config | kTnPerIntCap | kTnSizeCap64 | uint64_t{kRouteCap} << 32;
    case kTimerComparator:
      return t.comparator;
    default:
      return 0;  // FSB route: FSB delivery is not offered
  }
}

void Hpet::WriteRegister(uint64_t reg, uint64_t value, uint64_t mask) {
  switch (reg) {
    case kConfig: {
      const uint64_t next = ((config_ & ~mask) | (value & mask)) & (kEnableCnf | kLegRtCnf);
      const bool was_legacy = legacy_active();
      const bool was_enabled = config_ & kEnableCnf;
      const bool enable = next & kEnableCnf;
      if (was_enabled && !enable) counter_base_ = counter();  // halts the count
      if (!was_enabled && enable) enable_ns_ = clock_.NowNs();
      // Interrupts held on a route that changes (or stops, 2.3.5) are let go.
      if (was_enabled != enable || ((config_ ^ next) & kLegRtCnf)) {
        for (int n = 0; n < kTimers; ++n) Lower(n);
      }
      config_ = next;
      if (!was_enabled && enable) Rearm();
      if (was_legacy != legacy_active() && callbacks_.legacy_changed) {
        callbacks_.legacy_changed(legacy_active());
      }
      return;
    }
    case kIntStatus:
      // Write 1 to clear a level-triggered timer's status, which ends its interrupt (2.3.6).
      for (int n = 0; n < kTimers; ++n) {
        if (!(value & mask & (uint64_t{1} << n))) continue;
        int_status_ &= ~(uint64_t{1} << n);
        Lower(n);
      }
      return;
    case kCounter:
      // Software must halt the counter before writing it (2.3.7); a write while it runs is
      // ignored, as the count could not be set exactly anyway.
      if (config_ & kEnableCnf) return;
      counter_base_ = (counter_base_ & ~mask) | (value & mask);
      Rearm();
      return;
    default:
      break;
  }
  if (reg < kTimerBase || reg >= kTimerBase + kTimers * kTimerStride) return;
  const int n = static_cast<int>((reg - kTimerBase) / kTimerStride);
  switch ((reg - kTimerBase) % kTimerStride) {
    case kTimerConfig:
      WriteTimerConfig(n, (timers_[n].config & ~mask) | (value & mask));
      return;
    case kTimerComparator:
      WriteComparator(n, value, mask);
      return;
    default:
      return;
  }
}

void Hpet::WriteTimerConfig(int n, uint64_t value) {
  Timer& t = timers_[n];
  constexpr uint64_t kWritable =
      kTnIntTypeLevel | kTnIntEnb | kTnTypePeriodic | kTnValSet | kTn32Mode | kTnRouteMask;
  uint64_t next = value & kWritable;
  // A route outside the allowed mask is not taken: the field reads back unchanged (2.3.8).
  const uint32_t route = static_cast<uint32_t>((next & kTnRouteMask) >> kTnRouteShift);
  if (!((kRouteCap >> route) & 1)) next = (next & ~kTnRouteMask) | (t.config & kTnRouteMask);
  if (next & kTn32Mode) {
    t.comparator &= kLow32;
    t.period &= kLow32;
  }
  const bool keep_level =
      (next & kTnIntTypeLevel) && (next & kTnIntEnb) && !((t.config ^ next) & kTnRouteMask);
  t.config = next;
  if (!keep_level) {
    Lower(n);
    if (!(next & kTnIntTypeLevel)) int_status_ &= ~(uint64_t{1} << n);
  }
  t.from = counter();
}

void Hpet::WriteComparator(int n, uint64_t value, uint64_t mask) {
  Timer& t = timers_[n];
  const bool mode32 = t.config & kTn32Mode;
  // 2.3.9.2.2: in periodic mode a write with VAL_SET sets the comparator itself, and every
  // write sets the period (QEMU's reading, which Linux's two-write sequence relies on).
  const bool periodic = t.config & kTnTypePeriodic;
  if (mode32) mask &= kLow32;  // the upper half of a 32-bit timer is not writable
  if (mask != 0) {
    if (!periodic || (t.config & kTnValSet)) t.comparator = (t.comparator & ~mask) | (value & mask);
    if (periodic) t.period = (t.period & ~mask) | (value & mask);
  }
  t.config &= ~kTnValSet;
  t.from = counter();
}

std::pair<uint32_t, bool> Hpet::Route(int n) const {
  if (legacy_active() && n == 0) return {kLegacyIrq0, true};
  if (legacy_active() && n == 1) return {kLegacyIrq8, true};
  return {static_cast<uint32_t>((timers_[n].config & kTnRouteMask) >> kTnRouteShift), false};
}

bool Hpet::TimerLive(int n) const {
  return (config_ & kEnableCnf) && (timers_[n].config & kTnIntEnb);
}

void Hpet::Rearm() {
  const uint64_t now = counter();
  for (Timer& t : timers_) t.from = now;
}

uint64_t Hpet::NextMatch(int n) const {
  const Timer& t = timers_[n];
  if (t.config & kTn32Mode) {
    // The comparator matches the counter's low half once every 2^32 counts.
    uint64_t c = (t.from & ~kLow32) | (t.comparator & kLow32);
    if (c < t.from) c += uint64_t{1} << 32;
    return c;
  }
  return t.comparator >= t.from ? t.comparator : kNever;
}

void Hpet::Fire(int n) {
  Timer& t = timers_[n];
  const auto [line, legacy] = Route(n);
  if (!callbacks_.set_irq) return;
  if (t.config & kTnIntTypeLevel) {
    int_status_ |= uint64_t{1} << n;
    if (t.line_high) return;
    t.line_high = true;
    t.line = line;
    t.line_legacy = legacy;
    callbacks_.set_irq(line, legacy, true);
    return;
  }
  callbacks_.set_irq(line, legacy, true);
  callbacks_.set_irq(line, legacy, false);
}

void Hpet::Lower(int n) {
  Timer& t = timers_[n];
  if (!t.line_high) return;
  t.line_high = false;
  if (callbacks_.set_irq) callbacks_.set_irq(t.line, t.line_legacy, false);
}

void Hpet::Poll() {
  if (!(config_ & kEnableCnf)) return;
  const uint64_t now = counter();
  for (int n = 0; n < kTimers; ++n) {
    Timer& t = timers_[n];
    const uint64_t match = NextMatch(n);
    if (match == kNever || match > now) continue;
    if (t.config & kTnIntEnb) Fire(n);
    t.from = match + 1;
    if ((t.config & kTnTypePeriodic) && t.period != 0) {
      // Missed periods are coalesced: the comparator moves to the first multiple of the
      // period past the counter (2.3.9.2.2, as hardware that kept counting would).
      const uint64_t periods = (now - match) / t.period + 1;
      const uint64_t next = match + periods * t.period;
      t.comparator = (t.config & kTn32Mode) ? next & kLow32 : next;
      t.from = now + 1;
    }
  }
}

uint64_t Hpet::NextEventNs() const {
  uint64_t earliest = kNever;
  for (int n = 0; n < kTimers; ++n) {
    if (!TimerLive(n)) continue;
    const uint64_t match = NextMatch(n);
    if (match == kNever) continue;
    const uint64_t ns = TicksToNs(match - counter_base_);
    if (ns == kNever || ns > kNever - enable_ns_) continue;
    earliest = std::min(earliest, enable_ns_ + ns);
  }
  return earliest;
}

HpetState Hpet::SaveState() const {
  static_assert(kTimers == 3);
  HpetState s;
  s.config = config_;
  s.int_status = int_status_;
  s.counter = counter();
  for (int n = 0; n < kTimers; ++n) {
    const Timer& t = timers_[n];
    s.timers[n] = {t.config, t.comparator, t.period, t.from, t.line_high, t.line, t.line_legacy};
  }
  return s;
}

Status Hpet::RestoreState(const HpetState& s) {
  constexpr uint64_t kWritable =
      kTnIntTypeLevel | kTnIntEnb | kTnTypePeriodic | kTnValSet | kTn32Mode | kTnRouteMask;
  if (s.config & ~(kEnableCnf | kLegRtCnf)) {
    return Fail("the saved HPET configuration {:#x} has reserved bits set", s.config);
  }
  if (s.int_status >> kTimers) return Fail("the saved HPET interrupt status {:#x}", s.int_status);
  for (int n = 0; n < kTimers; ++n) {
    const HpetState::Timer& t = s.timers[n];
    const auto route = static_cast<uint32_t>((t.config & kTnRouteMask) >> kTnRouteShift);
    // Route 0 is the reset value; any other must be one the guest could select.
    if ((t.config & ~kWritable) || (route != 0 && !((kRouteCap >> route) & 1))) {
      return Fail("the saved HPET timer {} configuration {:#x} is not one the guest can set", n,
                  t.config);
    }
    if (t.line_high && (t.line_legacy ? t.line != kLegacyIrq0 && t.line != kLegacyIrq8
                                      : !((kRouteCap >> t.line) & 1))) {
      return Fail("the saved HPET timer {} holds line {}, which it cannot drive", n, t.line);
    }
  }
  for (int n = 0; n < kTimers; ++n) Lower(n);
  config_ = s.config;
  int_status_ = s.int_status;
  counter_base_ = s.counter;
  enable_ns_ = clock_.NowNs();
  for (int n = 0; n < kTimers; ++n) {
    const HpetState::Timer& st = s.timers[n];
    Timer& t = timers_[n];
    const bool mode32 = st.config & kTn32Mode;
    t.config = st.config;
    t.comparator = mode32 ? st.comparator & kLow32 : st.comparator;
    t.period = mode32 ? st.period & kLow32 : st.period;
    t.from = st.from;
    t.line_high = false;
    if (st.line_high) {
      t.line_high = true;
      t.line = st.line;
      t.line_legacy = st.line_legacy;
      if (callbacks_.set_irq) callbacks_.set_irq(t.line, t.line_legacy, true);
    }
  }
  return {};
}

}  // namespace vireo::irqchip
