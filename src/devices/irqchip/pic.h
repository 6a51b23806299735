// The PC's two cascaded 8259A PICs, after the Intel 8259A datasheet (order 231468): ICW1-ICW4
// initialisation, OCW1 (mask), OCW2 (non-specific/specific EOI, rotation, set priority),
// OCW3 (read IRR/ISR, poll, special mask mode), auto-EOI, edge or level triggering per line
// from the ELCR (ports 0x4d0/0x4d1, as on PIIX/ICH), the slave on master IRQ 2, and the
// spurious IRQ 7 / IRQ 15 of an INTA with nothing left to deliver.
//
// The INT output goes to the CPU through the local APIC's LINT0 in ExtINT mode (or
// directly with the local APIC disabled); the platform asks Output() and runs Acknowledge()
// as the INTA cycle that returns the vector.
#pragma once

#include <array>
#include <cstdint>

#include "accel/vcpu_state.h"
#include "base/result.h"

namespace vireo::irqchip {

class DualPic {
 public:
  static constexpr uint16_t kMasterPort = 0x20;
  static constexpr uint16_t kSlavePort = 0xa0;
  static constexpr uint16_t kElcrPort = 0x4d0;  // 0x4d0 master, 0x4d1 slave

  DualPic();

  // `chip` 0 master, 1 slave; `a0` the port's low bit.
  uint8_t Read(int chip, int a0);
  void Write(int chip, int a0, uint8_t value);
  uint8_t ReadElcr(int chip) const { return chips_[chip].elcr; }
  void WriteElcr(int chip, uint8_t value);

  // ISA IRQ 0-15 (line level; edge lines latch on the rising edge).
  void SetIrq(int irq, bool level);
  // The master's INT pin.
  bool Output() const { return chips_[0].Highest() >= 0; }
  // INTA: the vector of the highest pending IRQ, with ISR set (unless auto-EOI); with none
  // pending, the spurious IRQ 7 of the chip asked (ISR untouched).
  uint8_t Acknowledge();

  // Snapshot state of both chips in KVM's kvm_pic_state meanings (last_irr: the input
  // levels for edge detection; init_state: 0 ready, 1-3 expecting ICW2-ICW4; irq_base: ICW2's
  // T7-T3). Not carried, as KVM does not carry them: single mode (a PC always cascades)
  // and special fully nested mode (not emulated; saved as 0). Restore sets the registers
  // and re-evaluates the cascade; it raises nothing by itself.
  void SaveState(accel::PicState& master, accel::PicState& slave) const;
  Status RestoreState(const accel::PicState& master, const accel::PicState& slave);

  uint8_t irr(int chip) const { return chips_[chip].irr; }
  uint8_t isr(int chip) const { return chips_[chip].isr; }
  uint8_t imr(int chip) const { return chips_[chip].imr; }

 private:
  struct Chip {
    uint8_t irr = 0, isr = 0, imr = 0, elcr = 0, elcr_mask = 0;
    uint8_t lines = 0;  // last level of each input, for edge detection
    uint8_t vector_base = 0;
    uint8_t priority_add = 0;  // the highest-priority IRQ (rotation)
    uint8_t init_step = 0;     // 0: ready; 2/3/4: expecting ICW2/ICW3/ICW4
    bool single = false, icw4 = false, auto_eoi = false, rotate_on_aeoi = false;
    bool special_mask = false, poll = false, read_isr = false;
    // The highest-priority IRQ that would interrupt now, or -1 (8259A "priority resolver").
    int Highest() const;
    int HighestInService() const;
    void SetLine(int irq, bool level);
    // INTA on this chip for `irq`.
    void Ack(int irq);
  };

  void Cascade();  // the slave's INT onto master IRQ 2
  std::array<Chip, 2> chips_;
};

}  // namespace vireo::irqchip
