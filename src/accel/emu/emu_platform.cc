#include "accel/emu/emu_platform.h"

#include <algorithm>
#include <utility>

namespace vireo::emu {
namespace {

constexpr uint64_t kApicBaseEnable = 1u << 11;
constexpr uint64_t kApicBaseExtd = 1u << 10;
constexpr uint64_t kApicBaseMask = 0x000ffffffffff000ULL;
constexpr uint32_t kLowestPriority = 1;
constexpr uint32_t kExtInt = 7;

}  // namespace

EmuPlatform::EmuPlatform(int vcpu_count, const irqchip::Clock& clock, std::function<void(int)> wake,
                         uint64_t tsc_hz)
    : clock_(clock),
      wake_(std::move(wake)),
      tsc_hz_(tsc_hz),
      pc_(clock, bus_, static_cast<uint8_t>(vcpu_count)) {
  for (int i = 0; i < vcpu_count; ++i) {
    irqchip::LocalApic::Callbacks cb;
    cb.eoi_level = [this](uint8_t vector) { ioapic_.Eoi(vector); };
    cb.send_ipi = [this, i](const irqchip::ApicMessage& m, irqchip::LocalApic::Shorthand s,
                            uint32_t) {
      using S = irqchip::LocalApic::Shorthand;
      if (s == S::kNone) {
        Deliver(m);
        return;
      }
      for (size_t j = 0; j < lapics_.size(); ++j) {
        if (s == S::kAllButSelf && static_cast<int>(j) == i) continue;
        lapics_[j]->Accept(m);
        wake_(static_cast<int>(j));
      }
    };
    cb.nmi = [this, i] { nmi_pending_[i] = 1; };
    // INIT resets the APIC at once (it takes no more fixed interrupts until re-enabled); the
    // vCPU resets its registers when it next looks (TakeStartup), on its own thread.
    cb.init = [this, i] {
      lapics_[i]->ResetForInit();
      startup_[i] = {.init = true, .sipi_vector = -1};
    };
    cb.sipi = [this, i](uint8_t vector) { startup_[i].sipi_vector = vector; };
    lapics_.push_back(std::make_unique<irqchip::LocalApic>(i, clock, std::move(cb)));
  }
  nmi_pending_.assign(vcpu_count, 0);
  startup_.assign(vcpu_count, Startup{});
}

void EmuPlatform::Bus::PicOutputHigh() {
  for (size_t i = 0; i < p_.lapics_.size(); ++i) p_.wake_(static_cast<int>(i));
}

bool EmuPlatform::Deliver(const irqchip::ApicMessage& m, int exclude) {
  if (m.delivery_mode == kLowestPriority) return DeliverLowestPriority(m, exclude);
  bool accepted = false;
  for (size_t i = 0; i < lapics_.size(); ++i) {
    if (static_cast<int>(i) == exclude) continue;
    if (!lapics_[i]->MatchesDestination(m.logical, m.destination)) continue;
    if (m.delivery_mode != kExtInt) lapics_[i]->Accept(m);
    wake_(static_cast<int>(i));
    accepted = true;
  }
  return accepted;
}

bool EmuPlatform::DeliverLowestPriority(const irqchip::ApicMessage& m, int exclude) {
  const size_t n = lapics_.size();
  int best = -1;
  uint32_t best_priority = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (lowest_priority_next_ + k) % n;
    if (static_cast<int>(i) == exclude) continue;
    const irqchip::LocalApic& a = *lapics_[i];
    if (!a.MatchesDestination(m.logical, m.destination)) continue;
    // The class (PPR[7:4]) decides; a software-disabled APIC only when no other matches.
    const uint32_t priority = a.software_enabled() ? (a.ppr() & 0xf0) : 0x100;
    if (best < 0 || priority < best_priority) {
      best = static_cast<int>(i);
      best_priority = priority;
    }
  }
  if (best < 0) return false;
  lowest_priority_next_ = static_cast<size_t>(best) + 1;
  lapics_[best]->Accept(m);
  wake_(best);
  return true;
}

void EmuPlatform::SetIrqLocked(uint32_t gsi, bool level) {
  // The PC's GSI map (PcIrqchip, shared with KVM's split irqchip).
  pc_.SetIrq(gsi, level);
}

void EmuPlatform::SetPitIrqEnabled(bool enabled) {
  std::lock_guard lock(mu_);
  pit_.SetIrqEnabled(enabled);
}

void EmuPlatform::SetIrqLine(uint32_t gsi, bool level) {
  std::lock_guard lock(mu_);
  SetIrqLocked(gsi, level);
}

void EmuPlatform::SignalMsi(uint64_t address, uint32_t data) {
  if ((address >> 20) != 0xfee) return;  // not an interrupt message: dropped as on a PC
  irqchip::ApicMessage m;
  m.vector = static_cast<uint8_t>(data);
  m.delivery_mode = (data >> 8) & 7;
  m.level = (data >> 15) & 1;
  m.logical = (address >> 2) & 1;
  m.destination = (address >> 12) & 0xff;
  std::lock_guard lock(mu_);
  Deliver(m);
}

bool EmuPlatform::HandlePio(bool is_write, uint16_t port, uint32_t /*size*/, uint64_t* data) {
  if (!irqchip::PcIrqchip::ClaimsPort(port)) return false;
  std::lock_guard lock(mu_);
  return pc_.HandlePio(is_write, port, data);
}

bool EmuPlatform::HandleMmio(int vcpu, uint64_t apic_base, bool is_write, uint64_t address,
                             uint32_t size, uint64_t* data) {
  const uint64_t lapic_page = apic_base & kApicBaseMask;
  const bool lapic = (apic_base & kApicBaseEnable) && !(apic_base & kApicBaseExtd) &&
                     address >= lapic_page && address < lapic_page + irqchip::LocalApic::kSize;
  const bool ioapic = address >= irqchip::Ioapic::kDefaultBase &&
                      address < irqchip::Ioapic::kDefaultBase + irqchip::Ioapic::kSize;
  if (!lapic && !ioapic) return false;
  std::lock_guard lock(mu_);
  // Both register pages are 32-bit; other widths read as zero and are ignored (SDM 11.4.1,
  // 82093AA 3.0: "accessed as dwords").
  const bool dword = size == 4 && (address & 3) == 0;
  if (lapic) {
    irqchip::LocalApic& a = *lapics_[vcpu];
    const auto offset = static_cast<uint32_t>(address - lapic_page);
    if (is_write) {
      if (dword) a.Write(offset, static_cast<uint32_t>(*data));
    } else {
      *data = dword ? a.Read(offset) : 0;
    }
    return true;
  }
  return pc_.HandleIoapicMmio(is_write, address, size, data);
}

std::optional<uint8_t> EmuPlatform::TakeInterrupt(int vcpu, uint64_t apic_base, uint8_t* cr8,
                                                  bool acknowledge) {
  std::lock_guard lock(mu_);
  irqchip::LocalApic& a = *lapics_[vcpu];
  const bool enabled = apic_base & kApicBaseEnable;
  if (enabled) {
    // CR8 is TPR[7:4] (SDM 11.8.6): a MOV CR8 since the last look wins.
    if ((a.tpr() >> 4) != (*cr8 & 0xf)) a.set_tpr(static_cast<uint8_t>((*cr8 & 0xf) << 4));
    if (a.PendingVector() >= 0) {
      if (!acknowledge) return static_cast<uint8_t>(a.PendingVector());
      return a.Acknowledge();
    }
  }
  // The PIC reaches the BSP through LINT0 in ExtINT mode, or directly without an APIC
  // (KVM's kvm_apic_accept_pic_intr rule).
  const uint32_t lint0 = a.lvt_lint0();
  const bool pic_connected =
      vcpu == 0 &&
      (!enabled || (!(lint0 & irqchip::LocalApic::kLvtMasked) && ((lint0 >> 8) & 7) == kExtInt));
  if (pic_connected && pic_.Output()) {
    if (!acknowledge) return uint8_t{0};
    return pic_.Acknowledge();
  }
  return std::nullopt;
}

void EmuPlatform::PollTimers(int vcpu, uint64_t tsc) {
  std::lock_guard lock(mu_);
  lapics_[vcpu]->PollTimer(tsc);
  if (vcpu == 0) pit_.Poll();
}

uint64_t EmuPlatform::NextDeadlineNs(int vcpu, uint64_t tsc) {
  std::lock_guard lock(mu_);
  uint64_t d = lapics_[vcpu]->NextTimerDeadlineNs(tsc, tsc_hz_);
  if (vcpu == 0) d = std::min(d, pit_.NextEventNs());
  return d;
}

bool EmuPlatform::ReadMsr(int vcpu, uint32_t index, uint64_t* value) {
  if (index >= irqchip::LocalApic::kX2ApicMsrBase && index < irqchip::LocalApic::kX2ApicMsrEnd) {
    std::lock_guard lock(mu_);
    return lapics_[vcpu]->ReadMsr(index, value);
  }
  if (index != kMsrTscDeadline) return false;
  std::lock_guard lock(mu_);
  *value = lapics_[vcpu]->tsc_deadline();
  return true;
}

bool EmuPlatform::WriteMsr(int vcpu, uint32_t index, uint64_t value, uint64_t tsc) {
  if (index >= irqchip::LocalApic::kX2ApicMsrBase && index < irqchip::LocalApic::kX2ApicMsrEnd) {
    std::lock_guard lock(mu_);
    return lapics_[vcpu]->WriteMsr(index, value);
  }
  if (index != kMsrTscDeadline) return false;
  std::lock_guard lock(mu_);
  lapics_[vcpu]->set_tsc_deadline(value);
  lapics_[vcpu]->PollTimer(tsc);  // a deadline already passed fires now, as on hardware
  return true;
}

void EmuPlatform::SetApicBase(int vcpu, uint64_t apic_base) {
  std::lock_guard lock(mu_);
  lapics_[vcpu]->SetX2Apic((apic_base & kApicBaseEnable) && (apic_base & kApicBaseExtd));
}

bool EmuPlatform::TakeNmi(int vcpu) {
  std::lock_guard lock(mu_);
  const bool nmi = nmi_pending_[vcpu];
  nmi_pending_[vcpu] = 0;
  return nmi;
}

EmuPlatform::Startup EmuPlatform::TakeStartup(int vcpu) {
  std::lock_guard lock(mu_);
  return std::exchange(startup_[vcpu], Startup{});
}

void EmuPlatform::SetupLint(int vcpu) {
  std::lock_guard lock(mu_);
  // LINT0: ExtINT (the PIC), LINT1: NMI, both unmasked, as a PC's firmware leaves them.
  lapics_[vcpu]->SetLint(kExtInt << 8, 4u << 8);
}

uint8_t EmuPlatform::Tpr(int vcpu) {
  std::lock_guard lock(mu_);
  return lapics_[vcpu]->tpr();
}

accel::VmSavedState EmuPlatform::SaveState() {
  std::lock_guard lock(mu_);
  accel::VmSavedState s;
  pc_.SaveState(s);
  return s;
}

Status EmuPlatform::RestoreState(const accel::VmSavedState& s) {
  std::lock_guard lock(mu_);
  return pc_.RestoreState(s);
}

void EmuPlatform::SaveLapic(int vcpu, std::span<uint8_t, irqchip::LocalApic::kPageSize> page) {
  std::lock_guard lock(mu_);
  lapics_[vcpu]->SaveState(page);
}

Status EmuPlatform::RestoreLapic(int vcpu, std::span<const uint8_t> page) {
  std::lock_guard lock(mu_);
  return lapics_[vcpu]->RestoreState(page);
}

}  // namespace vireo::emu
