// Local APIC in xAPIC mode, after Intel SDM Vol. 3A chapter 11 (10 in older editions)
// "Advanced Programmable Interrupt Controller": the register page (table 11-1), IRR/ISR/TMR
// with priority (11.8), TPR/PPR (11.8.3.1), EOI (11.8.5), the spurious-vector register and
// software enable (11.4.7, 11.9), the LVT (11.5.1), the timer in one-shot and periodic mode
// with its divide configuration (11.5.4) and in TSC-deadline mode (11.5.4.1), the ICR with
// fixed/lowest-priority/NMI/INIT/SIPI messages, physical and logical (flat, cluster) destinations
// and shorthands (11.6), and the error status register (11.5.3). x2APIC mode (11.12) adds
// the MSR interface (0x800-0x8ff), 32-bit IDs and destinations, the cluster LDR derived from
// the ID and the SELF IPI register; the VMM switches it with IA32_APIC_BASE.EXTD.
//
// The APIC bus clock is 1 GHz, as KVM's (the timer counts nanoseconds before division), so
// guests calibrated for KVM see the same rates. Time comes from an injected Clock.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>

#include "base/result.h"
#include "devices/irqchip/clock.h"

namespace vireo::irqchip {

class LocalApic {
 public:
  static constexpr uint64_t kDefaultBase = 0xfee00000;
  static constexpr uint64_t kSize = 0x1000;
  // Register offsets (SDM table 11-1).
  static constexpr uint32_t kId = 0x020, kVersion = 0x030, kTpr = 0x080, kApr = 0x090, kPpr = 0x0a0,
                            kEoi = 0x0b0, kRrd = 0x0c0, kLdr = 0x0d0, kDfr = 0x0e0, kSvr = 0x0f0,
                            kIsr = 0x100, kTmr = 0x180, kIrr = 0x200, kEsr = 0x280,
                            kLvtCmci = 0x2f0, kIcrLow = 0x300, kIcrHigh = 0x310, kLvtTimer = 0x320,
                            kLvtThermal = 0x330, kLvtPerf = 0x340, kLvtLint0 = 0x350,
                            kLvtLint1 = 0x360, kLvtError = 0x370, kTimerInitial = 0x380,
                            kTimerCurrent = 0x390, kTimerDivide = 0x3e0;
  static constexpr uint32_t kLvtMasked = 1u << 16;
  static constexpr uint32_t kSvrEnable = 1u << 8;
  // ESR bits (SDM figure 11-9).
  static constexpr uint32_t kEsrSendIllegalVector = 1u << 5;
  static constexpr uint32_t kEsrReceiveIllegalVector = 1u << 6;
  static constexpr uint32_t kEsrIllegalRegister = 1u << 7;
  enum class Shorthand : uint8_t { kNone = 0, kSelf = 1, kAllIncludingSelf = 2, kAllButSelf = 3 };

  struct Callbacks {
    // EOI of a level-triggered vector: broadcast to the IOAPIC(s).
    std::function<void(uint8_t vector)> eoi_level;
    // An IPI for other APICs (every destination but a self-only one). `self` is this APIC's
    // ID; the bus delivers to each APIC the message and shorthand select, this one included
    // for kAllIncludingSelf.
    std::function<void(const ApicMessage&, Shorthand, uint32_t self)> send_ipi;
    // NMI, INIT or SIPI (with its vector) accepted by this APIC.
    std::function<void()> nmi;
    std::function<void()> init;
    std::function<void(uint8_t vector)> sipi;
  };

  LocalApic(uint32_t id, const Clock& clock, Callbacks callbacks);

  // Register page access: 32-bit reads and writes at 16-byte aligned offsets (others read as
  // zero and are ignored, SDM 11.4.1).
  uint32_t Read(uint32_t offset);
  void Write(uint32_t offset, uint32_t value);

  // The APIC bus: whether a message with this destination selects this APIC (11.6.2; in
  // x2APIC mode 11.12.9: 0xffffffff broadcasts, and 0xff too, the 8-bit broadcast of an IOAPIC
  // or MSI, as KVM's kvm_apic_mda; IDs stay below 255 here so no x2APIC ID is 0xff).
  bool MatchesDestination(bool logical, uint32_t destination) const;
  // x2APIC mode on or off (IA32_APIC_BASE.EXTD, the VMM checks the transition, 11.12.5).
  // Entering it derives the LDR from the ID (11.12.10.2); leaving it (to disabled) clears it.
  void SetX2Apic(bool on);
  bool x2apic() const { return x2apic_; }
  // RDMSR/WRMSR of 0x800-0x8ff in x2APIC mode (11.12.1.2, table 11-6): false for #GP (not
  // in x2APIC mode, no such register, a read of a write-only one or the reverse, reserved
  // bits: the upper half of all but the ICR, a non-zero EOI or ESR write).
  bool ReadMsr(uint32_t index, uint64_t* value);
  bool WriteMsr(uint32_t index, uint64_t value);
  static constexpr uint32_t kX2ApicMsrBase = 0x800, kX2ApicMsrEnd = 0x900;
  // Accepts a message addressed to this APIC (fixed/lowest priority into IRR, NMI/INIT/SIPI
  // to the callbacks). ExtINT is the PIC's, handled by the platform.
  void Accept(const ApicMessage& message);
  // A vector into IRR, TMR set for level (vectors 0-15 are illegal: ESR bit 6).
  void SetIrr(uint8_t vector, bool level);

  // The CPU's side: the highest IRR vector whose priority class beats PPR, or -1.
  int PendingVector() const;
  // INTA: moves PendingVector() from IRR to ISR and returns it.
  uint8_t Acknowledge();

  // Fires the timer if its time has come (sets the LVT timer vector in IRR). The count-down
  // modes compare against the Clock, TSC-deadline mode against `tsc`, the vCPU's TSC now.
  void PollTimer(uint64_t tsc = 0);
  // When the timer next fires, on the Clock's time line; UINT64_MAX when not armed. In
  // TSC-deadline mode the deadline stays in TSC units (what the guest wrote, compared exactly
  // against its TSC by PollTimer) and is converted here with `tsc_hz` only to know how long a
  // halted vCPU may sleep: a conversion error costs an extra wake-up, never an early interrupt.
  uint64_t NextTimerDeadlineNs(uint64_t tsc = 0, uint64_t tsc_hz = 0) const;
  // IA32_TSC_DEADLINE (MSR 0x6e0, 11.5.4.1): reads 0 and ignores writes unless the LVT timer
  // is in TSC-deadline mode; 0 disarms, and firing clears it. A deadline already passed fires
  // at the next PollTimer.
  uint64_t tsc_deadline() const;
  void set_tsc_deadline(uint64_t deadline);

  // TPR as CR8 sees it (CR8 = TPR[7:4], SDM 11.8.6).
  uint8_t tpr() const { return static_cast<uint8_t>(tpr_); }
  void set_tpr(uint8_t tpr) { tpr_ = tpr; }
  uint32_t id() const { return id_; }
  // The processor priority (11.8.3.1), which the bus compares for lowest-priority delivery.
  uint32_t ppr() const { return Ppr(); }
  bool software_enabled() const { return svr_ & kSvrEnable; }
  uint32_t lvt_lint0() const { return lvt_[kLint0]; }
  uint32_t lvt_lint1() const { return lvt_[kLint1]; }
  // The firmware's setup (LINT0 ExtINT, LINT1 NMI), as Vcpu::SetupLocalApic documents.
  void SetLint(uint32_t lint0, uint32_t lint1);
  // An INIT message resets the APIC to its power-up state except the APIC ID (11.4.7.3).
  void ResetForInit();

  // Snapshot state: the 1 KiB register page laid out as KVM's KVM_GET_LAPIC gives it (table
  // 11-1 offsets; the ID in 31:24 in both modes; in x2APIC mode ICR high holds the 32-bit
  // destination), so a KVM snapshot restores here and back. The timer's current count (0x390)
  // carries how far a count-down had run: the restored timer fires after that many ticks,
  // as KVM's restore does. What the page cannot hold goes where KVM carries it: the TSC
  // deadline in the MSR list (IA32_TSC_DEADLINE, restore it after the page) and x2APIC mode
  // in IA32_APIC_BASE (SetX2Apic before the page). Errors since the last ESR write, not yet
  // latched into the ESR, are not carried (KVM keeps no such latch either).
  static constexpr size_t kPageSize = 1024;
  void SaveState(std::span<uint8_t, kPageSize> page) const;
  // Refuses a page of another size or with another APIC ID (the VMM fixes the IDs). Sets
  // registers directly: no IPI, EOI or timer side effect runs.
  Status RestoreState(std::span<const uint8_t> page);

 private:
  enum Lvt { kCmci, kTimer, kThermal, kPerf, kLint0, kLint1, kError, kLvtCount };
  static int HighestBit(const std::array<uint32_t, 8>& bits);
  static bool TestBit(const std::array<uint32_t, 8>& bits, uint8_t v) {
    return (bits[v / 32] >> (v % 32)) & 1;
  }
  static void SetBit(std::array<uint32_t, 8>& bits, uint8_t v, bool on) {
    if (on) {
      bits[v / 32] |= 1u << (v % 32);
    } else {
      bits[v / 32] &= ~(1u << (v % 32));
    }
  }
  uint32_t Ppr() const;
  uint32_t X2ApicLdr() const { return ((id_ >> 4) << 16) | (1u << (id_ & 0xf)); }
  void Eoi();
  void SendIcr();
  void Error(uint32_t bit);
  uint32_t TimerDivisor() const;
  uint32_t TimerCurrent() const;
  void WriteLvt(Lvt lvt, uint32_t value);
  bool TscDeadlineMode() const;

  uint32_t id_;
  const Clock& clock_;
  Callbacks cb_;
  uint32_t tpr_ = 0;
  uint32_t ldr_ = 0;
  uint32_t dfr_ = 0xffffffff;  // flat model
  uint32_t svr_ = 0xff;        // software disabled, vector 0xff (11.4.7.1)
  uint32_t esr_ = 0;           // latched by the last ESR write
  uint32_t esr_pending_ = 0;   // errors since
  uint32_t icr_low_ = 0, icr_high_ = 0;
  std::array<uint32_t, kLvtCount> lvt_{};
  std::array<uint32_t, 8> irr_{}, isr_{}, tmr_{};
  // Timer: armed while initial_ != 0 and it has not expired in one-shot mode.
  uint32_t timer_initial_ = 0;
  uint32_t timer_divide_ = 0;  // the TDCR value
  uint64_t timer_start_ns_ = 0;
  uint64_t timer_fired_ = 0;  // periods already fired since timer_start_ns_
  bool timer_armed_ = false;
  uint64_t tsc_deadline_ = 0;  // TSC-deadline mode: armed while not 0
  bool x2apic_ = false;
};

}  // namespace vireo::irqchip
