#include "devices/irqchip/local_apic.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace vireo::irqchip {
namespace {

constexpr uint32_t kLvtTimerPeriodic = 1u << 17;
constexpr uint32_t kLvtTimerModeMask = 3u << 17;
constexpr uint32_t kLvtTimerTscDeadline = 2u << 17;
// Writable LVT bits (SDM figure 11-8): vector, delivery mode, polarity, trigger, mask, and
// the timer's mode. Delivery status (12) and remote IRR (14) are read-only.
constexpr uint32_t kLvtWritable[] = {
    0x000107ff,  // CMCI
    0x000700ff,  // timer: vector, mask, mode (one-shot, periodic, TSC-deadline)
    0x000107ff,  // thermal
    0x000107ff,  // performance counter
    0x0001a7ff,  // LINT0
    0x0001a7ff,  // LINT1
    0x000100ff,  // error
};
constexpr uint32_t kIcrWritable = 0x000ccfff;  // vector, mode, dest mode, level, trigger, shorthand

}  // namespace

LocalApic::LocalApic(uint32_t id, const Clock& clock, Callbacks callbacks)
    : id_(id), clock_(clock), cb_(std::move(callbacks)) {
  lvt_.fill(kLvtMasked);  // reset: every LVT entry masked (11.4.7.1)
}

void LocalApic::ResetForInit() {
  tpr_ = 0;
  ldr_ = x2apic_ ? X2ApicLdr() : 0;  // INIT keeps x2APIC mode (IA32_APIC_BASE is unchanged)
  dfr_ = 0xffffffff;
  svr_ = 0xff;
  esr_ = esr_pending_ = 0;
  icr_low_ = icr_high_ = 0;
  lvt_.fill(kLvtMasked);
  irr_.fill(0);
  isr_.fill(0);
  tmr_.fill(0);
  timer_initial_ = timer_divide_ = 0;
  timer_start_ns_ = timer_fired_ = 0;
  timer_armed_ = false;
  tsc_deadline_ = 0;
}

int LocalApic::HighestBit(const std::array<uint32_t, 8>& bits) {
  for (int i = 7; i >= 0; --i) {
    if (bits[i] != 0) return i * 32 + 31 - __builtin_clz(bits[i]);
  }
  return -1;
}

uint32_t LocalApic::Ppr() const {
  // 11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4.
  const int isrv = HighestBit(isr_);
  const uint32_t isr_class = isrv < 0 ? 0 : (static_cast<uint32_t>(isrv) & 0xf0);
  return (tpr_ & 0xf0) >= isr_class ? (tpr_ & 0xff) : isr_class;
}

int LocalApic::PendingVector() const {
  if (!software_enabled()) return -1;
  const int v = HighestBit(irr_);
  if (v < 0 || (static_cast<uint32_t>(v) & 0xf0) <= (Ppr() & 0xf0)) return -1;
  return v;
}

uint8_t LocalApic::Acknowledge() {
  const int v = PendingVector();
  // Without a deliverable vector the INTA cycle gets the spurious vector (11.9).
  if (v < 0) return static_cast<uint8_t>(svr_);
  SetBit(irr_, static_cast<uint8_t>(v), false);
  SetBit(isr_, static_cast<uint8_t>(v), true);
  return static_cast<uint8_t>(v);
}

void LocalApic::Eoi() {
  const int v = HighestBit(isr_);
  if (v < 0) return;  // an EOI with nothing in service is ignored
  SetBit(isr_, static_cast<uint8_t>(v), false);
  if (TestBit(tmr_, static_cast<uint8_t>(v)) && cb_.eoi_level) {
    cb_.eoi_level(static_cast<uint8_t>(v));
  }
}

void LocalApic::Error(uint32_t bit) {
  esr_pending_ |= bit;
  const uint32_t lvt = lvt_[kError];
  if (!(lvt & kLvtMasked)) SetIrr(static_cast<uint8_t>(lvt), false);
}

void LocalApic::SetIrr(uint8_t vector, bool level) {
  if (vector < 16) {
    Error(kEsrReceiveIllegalVector);
    return;
  }
  SetBit(irr_, vector, true);
  SetBit(tmr_, vector, level);
}

bool LocalApic::MatchesDestination(bool logical, uint32_t destination) const {
  if (x2apic_) {
    if (destination == 0xff || destination == 0xffffffff) return true;
    if (!logical) return destination == id_;
    // Cluster ID in 31:16, member bits 15:0 (11.12.10.2).
    const uint32_t ldr = X2ApicLdr();
    return (destination >> 16) == (ldr >> 16) && (destination & ldr & 0xffff) != 0;
  }
  if (destination == 0xffffffff) return true;  // an x2APIC sender's broadcast
  destination &= 0xff;
  if (!logical) return destination == 0xff || destination == (id_ & 0xff);
  if (destination == 0xff) return true;  // broadcast in both logical models
  const uint32_t ldr = ldr_ >> 24;
  if ((dfr_ >> 28) == 0xf) return (ldr & destination) != 0;  // flat model (11.6.2.2)
  // Cluster model: cluster ID in bits 7:4, member bits 3:0.
  return (ldr >> 4) == (destination >> 4) && (ldr & destination & 0x0f) != 0;
}

void LocalApic::Accept(const ApicMessage& m) {
  switch (m.delivery_mode) {
    case 0:  // fixed
    case 1:  // lowest priority: the bus chose this APIC; from here it is fixed delivery
      SetIrr(m.vector, m.level);
      break;
    case 4:
      if (cb_.nmi) cb_.nmi();
      break;
    case 5:
      if (cb_.init) cb_.init();
      break;
    case 6:
      if (cb_.sipi) cb_.sipi(m.vector);
      break;
    default:
      break;  // SMI and reserved modes: not emulated
  }
}

void LocalApic::SendIcr() {
  ApicMessage m;
  m.vector = static_cast<uint8_t>(icr_low_);
  m.delivery_mode = (icr_low_ >> 8) & 7;
  m.logical = (icr_low_ >> 11) & 1;
  m.level = (icr_low_ >> 15) & 1;
  m.destination = x2apic_ ? icr_high_ : icr_high_ >> 24;
  const auto shorthand = static_cast<Shorthand>((icr_low_ >> 18) & 3);
  // 11.6.1: INIT level de-assert (level 0, trigger level) is only a synchronisation message.
  if (m.delivery_mode == 5 && !((icr_low_ >> 14) & 1) && m.level) return;
  if ((m.delivery_mode == 0 || m.delivery_mode == 1) && m.vector < 16) {
    Error(kEsrSendIllegalVector);
    return;
  }
  if (shorthand == Shorthand::kSelf) {
    Accept(m);
    return;
  }
  if (cb_.send_ipi) cb_.send_ipi(m, shorthand, id_);
}

uint32_t LocalApic::TimerDivisor() const {
  // 11.5.4 figure 11-10: bits 3,1,0; 0b111 divides by 1, otherwise by 2^(value + 1).
  const uint32_t v = ((timer_divide_ >> 1) & 4) | (timer_divide_ & 3);
  return v == 7 ? 1 : 2u << v;
}

uint32_t LocalApic::TimerCurrent() const {
  if (TscDeadlineMode() || !timer_armed_ || timer_initial_ == 0) return 0;
  const uint64_t ticks = (clock_.NowNs() - timer_start_ns_) / TimerDivisor();
  if (lvt_[kTimer] & kLvtTimerPeriodic) {
    return static_cast<uint32_t>(timer_initial_ - ticks % timer_initial_);
  }
  return ticks >= timer_initial_ ? 0 : static_cast<uint32_t>(timer_initial_ - ticks);
}

bool LocalApic::TscDeadlineMode() const {
  return (lvt_[kTimer] & kLvtTimerModeMask) == kLvtTimerTscDeadline;
}

uint64_t LocalApic::tsc_deadline() const { return TscDeadlineMode() ? tsc_deadline_ : 0; }

void LocalApic::set_tsc_deadline(uint64_t deadline) {
  if (TscDeadlineMode()) tsc_deadline_ = deadline;
}

uint64_t LocalApic::NextTimerDeadlineNs(uint64_t tsc, uint64_t tsc_hz) const {
  if (TscDeadlineMode()) {
    if (tsc_deadline_ == 0) return std::numeric_limits<uint64_t>::max();
    if (tsc >= tsc_deadline_) return clock_.NowNs();
    if (tsc_hz == 0) return std::numeric_limits<uint64_t>::max();
    // Rounded up, so a sleep ends at or after the deadline by this estimate.
    const unsigned __int128 ns =
        (static_cast<unsigned __int128>(tsc_deadline_ - tsc) * 1'000'000'000 + tsc_hz - 1) / tsc_hz;
    const uint64_t now = clock_.NowNs();
    const uint64_t left = std::numeric_limits<uint64_t>::max() - now;
    return ns >= left ? std::numeric_limits<uint64_t>::max() : now + static_cast<uint64_t>(ns);
  }
  if (!timer_armed_ || timer_initial_ == 0) return std::numeric_limits<uint64_t>::max();
  const uint64_t period = uint64_t{timer_initial_} * TimerDivisor();
  return timer_start_ns_ + period * (timer_fired_ + 1);
}

void LocalApic::PollTimer(uint64_t tsc) {
  if (TscDeadlineMode()) {
    if (tsc_deadline_ == 0 || tsc < tsc_deadline_) return;
    tsc_deadline_ = 0;  // fired: the MSR reads 0 and the timer is disarmed (11.5.4.1)
    const uint32_t lvt = lvt_[kTimer];
    if (!(lvt & kLvtMasked)) SetIrr(static_cast<uint8_t>(lvt), false);
    return;
  }
  const uint64_t deadline = NextTimerDeadlineNs();
  const uint64_t now = clock_.NowNs();
  if (now < deadline) return;
  const uint32_t lvt = lvt_[kTimer];
  if (lvt & kLvtTimerPeriodic) {
    // Periods missed while nobody polled are coalesced into one interrupt.
    const uint64_t period = uint64_t{timer_initial_} * TimerDivisor();
    timer_fired_ = (now - timer_start_ns_) / period;
  } else {
    timer_armed_ = false;
  }
  if (!(lvt & kLvtMasked)) SetIrr(static_cast<uint8_t>(lvt), false);
}

void LocalApic::WriteLvt(Lvt lvt, uint32_t value) {
  uint32_t v = (lvt_[lvt] & ~kLvtWritable[lvt]) | (value & kLvtWritable[lvt]);
  if (!software_enabled()) v |= kLvtMasked;  // 11.4.7.2: masks stay set while disabled
  if (lvt == kTimer && ((v ^ lvt_[lvt]) & kLvtTimerModeMask)) {
    // A mode change stops the timer in every mode (11.5.4.1): the next initial-count or
    // IA32_TSC_DEADLINE write starts it again.
    timer_armed_ = false;
    timer_initial_ = 0;
    tsc_deadline_ = 0;
  }
  lvt_[lvt] = v;
}

void LocalApic::SetX2Apic(bool on) {
  if (on == x2apic_) return;
  x2apic_ = on;
  ldr_ = on ? X2ApicLdr() : 0;
  icr_high_ = 0;
}

bool LocalApic::ReadMsr(uint32_t index, uint64_t* value) {
  if (!x2apic_ || index < kX2ApicMsrBase || index >= kX2ApicMsrEnd) return false;
  const uint32_t offset = (index - kX2ApicMsrBase) << 4;
  switch (offset) {
    case kId:
      *value = id_;  // all 32 bits (11.12.5.1)
      return true;
    case kIcrLow:
      *value = (uint64_t{icr_high_} << 32) | icr_low_;
      return true;
    case kVersion:
    case kTpr:
    case kPpr:
    case kLdr:
    case kSvr:
    case kEsr:
    case kLvtCmci:
    case kLvtTimer:
    case kLvtThermal:
    case kLvtPerf:
    case kLvtLint0:
    case kLvtLint1:
    case kLvtError:
    case kTimerInitial:
    case kTimerCurrent:
    case kTimerDivide:
      *value = Read(offset);
      return true;
    default:
      if (offset >= kIsr && offset < kIrr + 0x80) {  // ISR, TMR, IRR
        *value = Read(offset);
        return true;
      }
      return false;  // EOI and SELF IPI are write-only; DFR, ICR high, APR, RRD are gone
  }
}

bool LocalApic::WriteMsr(uint32_t index, uint64_t value) {
  if (!x2apic_ || index < kX2ApicMsrBase || index >= kX2ApicMsrEnd) return false;
  const uint32_t offset = (index - kX2ApicMsrBase) << 4;
  if (offset == kIcrLow) {
    // One 64-bit write: destination in 63:32, then the message goes (11.12.9).
    icr_high_ = static_cast<uint32_t>(value >> 32);
    icr_low_ = static_cast<uint32_t>(value) & kIcrWritable;
    SendIcr();
    return true;
  }
  if (value >> 32) return false;
  const auto v = static_cast<uint32_t>(value);
  switch (offset) {
    case kEoi:
    case kEsr:
      if (v != 0) return false;
      Write(offset, v);
      return true;
    case 0x3f0: {  // SELF IPI: a fixed, edge-triggered IPI to this APIC (11.12.11)
      ApicMessage m;
      m.vector = static_cast<uint8_t>(v);
      Accept(m);
      return true;
    }
    case kTpr:
    case kSvr:
    case kLvtCmci:
    case kLvtTimer:
    case kLvtThermal:
    case kLvtPerf:
    case kLvtLint0:
    case kLvtLint1:
    case kLvtError:
    case kTimerInitial:
    case kTimerDivide:
      Write(offset, v);
      return true;
    default:
      return false;  // read-only (ID, version, PPR, LDR, ISR/TMR/IRR, current count) or absent
  }
}

void LocalApic::SetLint(uint32_t lint0, uint32_t lint1) {
  lvt_[kLint0] = lint0 & kLvtWritable[kLint0];
  lvt_[kLint1] = lint1 & kLvtWritable[kLint1];
}

uint32_t LocalApic::Read(uint32_t offset) {
  if (offset & 0xf) return 0;
  if (offset >= kIsr && offset < kIsr + 0x80) return isr_[(offset - kIsr) / 16];
  if (offset >= kTmr && offset < kTmr + 0x80) return tmr_[(offset - kTmr) / 16];
  if (offset >= kIrr && offset < kIrr + 0x80) return irr_[(offset - kIrr) / 16];
  switch (offset) {
    case kId:
      return id_ << 24;
    case kVersion:
      // Version 0x14 (integrated APIC), max LVT entry 6 (CMCI included) in 23:16.
      return 0x14 | (uint32_t{kLvtCount - 1} << 16);
    case kTpr:
      return tpr_;
    case kApr:
      return 0;
    case kPpr:
      return Ppr();
    case kLdr:
      return ldr_;
    case kDfr:
      return dfr_;
    case kSvr:
      return svr_;
    case kEsr:
      return esr_;
    case kIcrLow:
      return icr_low_;  // delivery status (12) reads idle: messages go out at once
    case kIcrHigh:
      return icr_high_;
    case kLvtCmci:
      return lvt_[kCmci];
    case kLvtTimer:
      return lvt_[kTimer];
    case kLvtThermal:
      return lvt_[kThermal];
    case kLvtPerf:
      return lvt_[kPerf];
    case kLvtLint0:
      return lvt_[kLint0];
    case kLvtLint1:
      return lvt_[kLint1];
    case kLvtError:
      return lvt_[kError];
    case kTimerInitial:
      return timer_initial_;
    case kTimerCurrent:
      return TimerCurrent();
    case kTimerDivide:
      return timer_divide_;
    default:
      return 0;
  }
}

void LocalApic::Write(uint32_t offset, uint32_t value) {
  if (offset & 0xf) return;
  switch (offset) {
    case kTpr:
      tpr_ = value & 0xff;
      return;
    case kEoi:
      Eoi();
      return;
    case kLdr:
      ldr_ = value & 0xff000000;
      return;
    case kDfr:
      dfr_ = value | 0x0fffffff;
      return;
    case kSvr:
      // Vector, software enable, focus check; EOI-broadcast suppression is not offered.
      svr_ = value & 0x3ff;
      if (!software_enabled()) {
        for (uint32_t& lvt : lvt_) lvt |= kLvtMasked;
      }
      return;
    case kEsr:
      // 11.5.3: a write latches the errors seen since the previous write.
      esr_ = esr_pending_;
      esr_pending_ = 0;
      return;
    case kIcrLow:
      icr_low_ = value & kIcrWritable;
      SendIcr();
      return;
    case kIcrHigh:
      icr_high_ = value & 0xff000000;
      return;
    case kLvtCmci:
      WriteLvt(kCmci, value);
      return;
    case kLvtTimer:
      WriteLvt(kTimer, value);
      return;
    case kLvtThermal:
      WriteLvt(kThermal, value);
      return;
    case kLvtPerf:
      WriteLvt(kPerf, value);
      return;
    case kLvtLint0:
      WriteLvt(kLint0, value);
      return;
    case kLvtLint1:
      WriteLvt(kLint1, value);
      return;
    case kLvtError:
      WriteLvt(kError, value);
      return;
    case kTimerInitial:
      // 11.5.4: writing the initial count (re)starts the count-down; 0 stops it. TSC-deadline
      // mode ignores it (11.5.4.1).
      if (TscDeadlineMode()) return;
      timer_initial_ = value;
      timer_start_ns_ = clock_.NowNs();
      timer_fired_ = 0;
      timer_armed_ = value != 0;
      return;
    case kTimerDivide:
      timer_divide_ = value & 0xb;
      return;
    case kId:
    case kVersion:
    case kApr:
    case kPpr:
    case kRrd:
    case kTimerCurrent:
      return;  // read-only (the ID is fixed by the VMM)
    default:
      if (offset >= kIsr && offset < kIrr + 0x80) return;  // ISR/TMR/IRR are read-only
      Error(kEsrIllegalRegister);
      return;
  }
}

namespace {

void PutReg(std::span<uint8_t, LocalApic::kPageSize> page, uint32_t offset, uint32_t value) {
  std::memcpy(page.data() + offset, &value, sizeof(value));
}
uint32_t GetReg(std::span<const uint8_t> page, uint32_t offset) {
  uint32_t value;
  std::memcpy(&value, page.data() + offset, sizeof(value));
  return value;
}
constexpr uint32_t kLvtOffsets[] = {
    LocalApic::kLvtCmci,  LocalApic::kLvtTimer, LocalApic::kLvtThermal, LocalApic::kLvtPerf,
    LocalApic::kLvtLint0, LocalApic::kLvtLint1, LocalApic::kLvtError};

}  // namespace

void LocalApic::SaveState(std::span<uint8_t, kPageSize> page) const {
  std::fill(page.begin(), page.end(), uint8_t{0});
  PutReg(page, kId, id_ << 24);
  PutReg(page, kVersion, 0x14 | (uint32_t{kLvtCount - 1} << 16));
  PutReg(page, kTpr, tpr_);
  PutReg(page, kPpr, Ppr());
  PutReg(page, kLdr, ldr_);
  PutReg(page, kDfr, dfr_);
  PutReg(page, kSvr, svr_);
  for (uint32_t i = 0; i < 8; ++i) {
    PutReg(page, kIsr + 16 * i, isr_[i]);
    PutReg(page, kTmr + 16 * i, tmr_[i]);
    PutReg(page, kIrr + 16 * i, irr_[i]);
  }
  PutReg(page, kEsr, esr_);
  PutReg(page, kIcrLow, icr_low_);
  PutReg(page, kIcrHigh, icr_high_);
  for (int i = 0; i < kLvtCount; ++i) PutReg(page, kLvtOffsets[i], lvt_[i]);
  PutReg(page, kTimerInitial, timer_initial_);
  PutReg(page, kTimerCurrent, TimerCurrent());
  PutReg(page, kTimerDivide, timer_divide_);
}

Status LocalApic::RestoreState(std::span<const uint8_t> page) {
  if (page.size() != kPageSize) {
    return Fail("the saved local APIC page is {} bytes, not {}", page.size(), kPageSize);
  }
  const uint32_t id = GetReg(page, kId) >> 24;
  if (id != (id_ & 0xff)) {
    return Fail(
        "the saved local APIC has ID {}, but this vCPU's APIC has ID {} (the guest changed "
        "its APIC ID, which Vireo's local APIC does not support)",
        id, id_);
  }
  tpr_ = GetReg(page, kTpr) & 0xff;
  // x2APIC mode (set from IA32_APIC_BASE first) derives the LDR from the ID (11.12.10.2).
  ldr_ = x2apic_ ? X2ApicLdr() : GetReg(page, kLdr) & 0xff000000;
  dfr_ = GetReg(page, kDfr) | 0x0fffffff;
  svr_ = GetReg(page, kSvr) & 0x3ff;
  for (uint32_t i = 0; i < 8; ++i) {
    isr_[i] = GetReg(page, kIsr + 16 * i);
    tmr_[i] = GetReg(page, kTmr + 16 * i);
    irr_[i] = GetReg(page, kIrr + 16 * i);
  }
  // Vectors 0-15 cannot be pending or in service (11.8.4).
  isr_[0] &= 0xffff0000u;
  irr_[0] &= 0xffff0000u;
  tmr_[0] &= 0xffff0000u;
  esr_ = GetReg(page, kEsr) & 0xff;
  esr_pending_ = 0;
  icr_low_ = GetReg(page, kIcrLow) & kIcrWritable;
  icr_high_ = x2apic_ ? GetReg(page, kIcrHigh) : GetReg(page, kIcrHigh) & 0xff000000;
  for (int i = 0; i < kLvtCount; ++i) {
    lvt_[i] = GetReg(page, kLvtOffsets[i]) & kLvtWritable[i];
    if (!software_enabled()) lvt_[i] |= kLvtMasked;
  }
  timer_divide_ = GetReg(page, kTimerDivide) & 0xb;
  timer_initial_ = TscDeadlineMode() ? 0 : GetReg(page, kTimerInitial);
  tsc_deadline_ = 0;  // IA32_TSC_DEADLINE comes with the MSRs, after the page
  timer_fired_ = 0;
  const uint32_t current = GetReg(page, kTimerCurrent);
  // One-shot with a current count of 0 has expired; a periodic count is never 0 (a reload),
  // so 0 there means a whole period is left.
  const bool periodic = lvt_[kTimer] & kLvtTimerPeriodic;
  timer_armed_ = timer_initial_ != 0 && (current != 0 || periodic);
  const uint64_t period = uint64_t{timer_initial_} * TimerDivisor();
  const uint64_t left =
      current == 0 || current > timer_initial_ ? period : uint64_t{current} * TimerDivisor();
  // The count-down restarts so that `current` ticks remain: as if it had started
  // (period - left) ns ago (modular arithmetic: the start may precede the Clock's zero).
  timer_start_ns_ = clock_.NowNs() - (period - left);
  return {};
}

}  // namespace vireo::irqchip
