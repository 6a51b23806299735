// EmuPlatform: the interrupt controllers and PIT of a VM on the software CPU, which has no
// kernel to hold them (on KVM they are in-kernel). It wires the device models of
// devices/irqchip (the IOAPIC/PIC/PIT part through PcIrqchip, shared with KVM's split
// irqchip; its APIC bus here is the LocalApic models): GSI lines into the IOAPIC (and ISA
// IRQs 0-15 into the dual PIC as well), the PIT's IRQ 0 into PIC IRQ 0 and IOAPIC pin 2 (the
// MADT's override), MSIs and IOAPIC
// messages onto the local APICs, EOIs of level vectors back to the IOAPIC, and the PIC's
// INT into the CPU through LINT0 (ExtINT) or directly with the local APIC disabled.
//
// One mutex guards every model: device threads raise lines and MSIs while the vCPU thread
// reads registers and takes interrupts. The vCPU claims the PIT/PIC ports and the APIC
// pages before it makes an exit, and asks for an interrupt between slices.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "accel/vcpu_state.h"
#include "base/result.h"
#include "devices/interrupt_line.h"
#include "devices/irqchip/clock.h"
#include "devices/irqchip/ioapic.h"
#include "devices/irqchip/local_apic.h"
#include "devices/irqchip/pc_irqchip.h"
#include "devices/irqchip/pic.h"
#include "devices/irqchip/pit.h"

namespace vireo::emu {

class EmuPlatform {
 public:
  // `wake(vcpu)` makes a halted vCPU look for interrupts again (any thread). `tsc_hz`, the
  // rate of the TSC the vCPUs read, turns TSC deadlines into sleep times (0: unknown, a
  // halted vCPU then waits for another event before it sees its TSC deadline pass).
  EmuPlatform(int vcpu_count, const irqchip::Clock& clock, std::function<void(int)> wake,
              uint64_t tsc_hz = 0);

  // Port I/O of the PIT (0x40-0x43), port B (0x61), the PICs (0x20/0x21, 0xa0/0xa1) and the
  // ELCR (0x4d0/0x4d1): true when claimed (`*data` holds an IN's result).
  bool HandlePio(bool is_write, uint16_t port, uint32_t size, uint64_t* data);
  // MMIO of vCPU `vcpu`'s local APIC page (at its APIC_BASE, when enabled in xAPIC mode)
  // and the IOAPIC.
  bool HandleMmio(int vcpu, uint64_t apic_base, bool is_write, uint64_t address, uint32_t size,
                  uint64_t* data);

  void SetIrqLine(uint32_t gsi, bool level);
  // The PIT's counter 0 drives IRQ 0 or not (an HPET in legacy-replacement mode owns it).
  void SetPitIrqEnabled(bool enabled);
  // An MSI write (SDM Vol. 3 11.11: address 0xfeeXXXXX, data with vector and mode).
  void SignalMsi(uint64_t address, uint32_t data);

  // The vCPU's side, between slices: fires due timers; returns the vector the CPU should
  // take (acknowledged when `acknowledge`), or nothing. `cr8` is kept in step with TPR.
  std::optional<uint8_t> TakeInterrupt(int vcpu, uint64_t apic_base, uint8_t* cr8,
                                       bool acknowledge);
  // `tsc` is the vCPU's TSC now (RDTSC's value), for the TSC-deadline timer.
  void PollTimers(int vcpu, uint64_t tsc = 0);
  // The earliest timer event that concerns `vcpu` (its APIC timer, the PIT), Clock time.
  uint64_t NextDeadlineNs(int vcpu, uint64_t tsc = 0);
  // The local APIC's MSRs for RDMSR/WRMSR: IA32_TSC_DEADLINE (0x6e0) and, in x2APIC mode,
  // 0x800-0x8ff. False: not one of them, or refused (#GP). A deadline written already passed
  // fires at once.
  bool ReadMsr(int vcpu, uint32_t index, uint64_t* value);
  bool WriteMsr(int vcpu, uint32_t index, uint64_t value, uint64_t tsc);
  static constexpr uint32_t kMsrTscDeadline = 0x6e0;
  // A new IA32_APIC_BASE for `vcpu` (the CPU checked the transition): EXTD switches its
  // APIC's x2APIC mode, which also takes the MMIO page away (SDM 11.12.1).
  void SetApicBase(int vcpu, uint64_t apic_base);
  // An NMI accepted by `vcpu`'s APIC (ICR, MSI or IOAPIC NMI mode); cleared by taking it.
  bool TakeNmi(int vcpu);
  // INIT and start-up IPIs accepted by `vcpu`'s APIC since the last look, in order: an INIT
  // drops an earlier SIPI, and a SIPI only counts after an INIT (the vCPU decides, by its
  // wait-for-SIPI state). Cleared by taking them.
  struct Startup {
    bool init = false;
    int sipi_vector = -1;
  };
  Startup TakeStartup(int vcpu);
  // Firmware state: LINT0 ExtINT, LINT1 NMI (Vcpu::SetupLocalApic).
  void SetupLint(int vcpu);
  uint8_t Tpr(int vcpu);

  const irqchip::Clock& clock() const { return clock_; }

  // Snapshot state, under the platform's lock (the vCPUs are parked): the PICs, IOAPIC and
  // PIT (the conversions live in the models, devices/irqchip) and each vCPU's LAPIC page.
  // The LAPIC restore comes after the vCPU's APIC base (x2APIC mode) and before its MSRs
  // (IA32_TSC_DEADLINE).
  accel::VmSavedState SaveState();
  Status RestoreState(const accel::VmSavedState& state);
  void SaveLapic(int vcpu, std::span<uint8_t, irqchip::LocalApic::kPageSize> page);
  Status RestoreLapic(int vcpu, std::span<const uint8_t> page);

 private:
  // The APIC bus of the shared IOAPIC/PIC/PIT wiring (PcIrqchip): Vireo's local APICs.
  class Bus final : public irqchip::PcIrqchip::ApicBus {
   public:
    explicit Bus(EmuPlatform& p) : p_(p) {}
    bool Deliver(const irqchip::ApicMessage& m) override { return p_.Deliver(m); }
    void PicOutputHigh() override;

   private:
    EmuPlatform& p_;
  };
  // Puts `m` on the APIC bus; true when a local APIC took it. mu_ held.
  bool Deliver(const irqchip::ApicMessage& m, int exclude = -1);
  // Lowest-priority delivery (SDM Vol. 3 11.6.2.4): the matching APIC with the lowest
  // processor-priority class, software-enabled ones first; ties go round-robin.
  bool DeliverLowestPriority(const irqchip::ApicMessage& m, int exclude);
  void SetIrqLocked(uint32_t gsi, bool level);

  const irqchip::Clock& clock_;
  std::function<void(int)> wake_;
  uint64_t tsc_hz_;
  std::mutex mu_;
  Bus bus_{*this};
  irqchip::PcIrqchip pc_;  // IOAPIC, PIC, PIT and the GSI map, under mu_
  irqchip::Ioapic& ioapic_ = pc_.ioapic();
  irqchip::DualPic& pic_ = pc_.pic();
  irqchip::Pit& pit_ = pc_.pit();
  std::vector<std::unique_ptr<irqchip::LocalApic>> lapics_;
  std::vector<Startup> startup_;  // per vCPU, guarded by mu_
  std::vector<uint8_t> nmi_pending_;
  size_t lowest_priority_next_ = 0;  // where the next tie-break search starts
};

}  // namespace vireo::emu
