// PcIrqchip: a PC's IOAPIC, dual 8259 PIC and 8254 PIT wired together as on a PC, for the
// configurations where these live in userspace: the software CPU (accel/emu/emu_platform.*)
// and KVM's split irqchip (accel/kvm/split_irqchip.*). What differs between the two is only
// the APIC bus (the local APICs are Vireo's models or KVM's), so that is an interface.
//
// The GSI map (docs/interrupts.md): GSIs 0-15 are ISA IRQs on both the PIC and the IOAPIC
// (the PIC's IRQ 2 is the cascade), except that ISA IRQ 0 is IOAPIC pin 2 (the MADT's
// interrupt source override); GSIs 16-23 are IOAPIC pins only. The PIT's counter 0 drives
// ISA IRQ 0.
//
// No lock of its own: the owner serialises every call (its APIC bus may take the same lock's
// other state, e.g. the emu LAPICs, so one owner-held mutex covers both).
#pragma once

#include <cstdint>

#include "accel/vcpu_state.h"
#include "base/result.h"
#include "devices/interrupt_line.h"
#include "devices/irqchip/clock.h"
#include "devices/irqchip/ioapic.h"
#include "devices/irqchip/pic.h"
#include "devices/irqchip/pit.h"

namespace vireo::irqchip {

class PcIrqchip {
 public:
  // Where the IOAPIC's messages and the PIC's output go. Called with the owner's lock held.
  class ApicBus {
   public:
    virtual ~ApicBus() = default;
    // An IOAPIC message; true when a local APIC accepted it (IOAPIC Remote IRR follows it).
    virtual bool Deliver(const ApicMessage& message) = 0;
    // The PIC's INT output is high after a line change: vCPU 0 should look for an ExtINT.
    virtual void PicOutputHigh() = 0;
    // The guest wrote redirection entry `pin` (KVM's split irqchip mirrors it in a route).
    virtual void RedirectionWritten(int /*pin*/) {}
  };

  static constexpr uint32_t kPitPin = 2;  // the MADT's interrupt source override for IRQ 0

  PcIrqchip(const Clock& clock, ApicBus& bus, uint8_t ioapic_id);
  PcIrqchip(const PcIrqchip&) = delete;
  PcIrqchip& operator=(const PcIrqchip&) = delete;

  // A device's GSI line (the map above); GSIs past the IOAPIC's pins are ignored.
  void SetIrq(uint32_t gsi, bool level);
  // The PIT's counter 0 drives IRQ 0 or not (an HPET in legacy replacement owns it).
  void SetPitIrqEnabled(bool enabled) { pit_.SetIrqEnabled(enabled); }

  // Port I/O of the PIT (0x40-0x43), port B (0x61), the PICs (0x20/0x21, 0xa0/0xa1) and the
  // ELCR (0x4d0/0x4d1): true when claimed (`*data` holds an IN's result).
  bool HandlePio(bool is_write, uint16_t port, uint64_t* data);
  static bool ClaimsPort(uint16_t port);
  // MMIO of the IOAPIC's page: true when `address` is in it. Dword accesses only; others
  // read as zero and are ignored (82093AA 3.0: "accessed as dwords").
  bool HandleIoapicMmio(bool is_write, uint64_t address, uint32_t size, uint64_t* data);
  static bool ClaimsMmio(uint64_t address) {
    return address >= Ioapic::kDefaultBase && address < Ioapic::kDefaultBase + Ioapic::kSize;
  }

  // A local APIC's EOI of a level-triggered vector (the broadcast to the IOAPIC).
  void EoiLevel(uint8_t vector) { ioapic_.Eoi(vector); }
  // Raises IRQ 0 for the PIT's OUT0 edges since the last poll.
  void PollPit() { pit_.Poll(); }
  uint64_t NextPitEventNs() const { return pit_.NextEventNs(); }
  bool PicOutput() const { return pic_.Output(); }
  // The PIC's INTA cycle: the vector to take (ISR set unless auto-EOI).
  uint8_t PicAcknowledge() { return pic_.Acknowledge(); }

  Ioapic& ioapic() { return ioapic_; }
  DualPic& pic() { return pic_; }
  Pit& pit() { return pit_; }

  // Snapshots: the PICs, the IOAPIC and the PIT in the accelerator-neutral form (KVM's
  // meanings, accel/vcpu_state.h), the PIT's times against the clock's now (saved_at_ns).
  // Restore sets registers and delivers nothing.
  void SaveState(accel::VmSavedState& state);
  Status RestoreState(const accel::VmSavedState& state);

 private:
  class Irq0 final : public InterruptLine {
   public:
    explicit Irq0(PcIrqchip& chip) : chip_(chip) {}
    void SetLevel(bool asserted) override { chip_.SetIrq(0, asserted); }  // from Pit::Poll

   private:
    PcIrqchip& chip_;
  };

  const Clock& clock_;
  ApicBus& bus_;
  Irq0 irq0_{*this};
  Ioapic ioapic_;
  DualPic pic_;
  Pit pit_;
};

}  // namespace vireo::irqchip
