#include "devices/irqchip/pic.h"

namespace vireo::irqchip {
namespace {

constexpr int kCascadeIrq = 2;

}  // namespace

DualPic::DualPic() {
  // IRQs 0, 1, 2 (master) and 8, 13 (slave) are always edge on PIIX (ELCR reserved bits).
  chips_[0].elcr_mask = 0xf8;
  chips_[1].elcr_mask = 0xde;
}

int DualPic::Chip::HighestInService() const {
  // Special mask mode: a masked IRQ in service does not block lower priorities.
  const uint8_t in_service = special_mask ? (isr & ~imr) : isr;
  for (int i = 0; i < 8; ++i) {
    const int irq = (priority_add + i) & 7;
    if (in_service & (1 << irq)) return irq;
  }
  return -1;
}

int DualPic::Chip::Highest() const {
  const uint8_t pending = irr & ~imr;
  if (pending == 0) return -1;
  int irq = -1;
  int prio = 0;
  for (; prio < 8; ++prio) {
    irq = (priority_add + prio) & 7;
    if (pending & (1 << irq)) break;
  }
  const int busy = HighestInService();
  if (busy < 0) return irq;
  const int busy_prio = (busy - priority_add) & 7;
  return prio < busy_prio ? irq : -1;
}

void DualPic::Chip::SetLine(int irq, bool level) {
  const uint8_t bit = static_cast<uint8_t>(1 << irq);
  if (elcr & bit) {
    // Level: IRR follows the line.
    irr = level ? (irr | bit) : (irr & ~bit);
  } else if (level && !(lines & bit)) {
    irr |= bit;  // edge: latched on the rising edge
  }
  lines = level ? (lines | bit) : (lines & ~bit);
}

void DualPic::Chip::Ack(int irq) {
  const uint8_t bit = static_cast<uint8_t>(1 << irq);
  if (auto_eoi) {
    if (rotate_on_aeoi) priority_add = (irq + 1) & 7;
  } else {
    isr |= bit;
  }
  // The INTA clears the request; a level line still high asks again.
  if (!(elcr & bit) || !(lines & bit)) irr &= ~bit;
}

void DualPic::Cascade() { chips_[0].SetLine(kCascadeIrq, chips_[1].Highest() >= 0); }

void DualPic::SetIrq(int irq, bool level) {
  if (irq < 0 || irq > 15) return;
  chips_[irq >> 3].SetLine(irq & 7, level);
  Cascade();
}

uint8_t DualPic::Acknowledge() {
  Chip& master = chips_[0];
  const int irq = master.Highest();
  if (irq < 0) return master.vector_base | 7;  // spurious IRQ 7
  master.Ack(irq);
  if (irq != kCascadeIrq || master.single) {
    Cascade();
    return static_cast<uint8_t>(master.vector_base | irq);
  }
  Chip& slave = chips_[1];
  const int slave_irq = slave.Highest();
  uint8_t vector;
  if (slave_irq < 0) {
    vector = slave.vector_base | 7;  // spurious IRQ 15 (the master's IRQ 2 stays in service)
  } else {
    slave.Ack(slave_irq);
    vector = static_cast<uint8_t>(slave.vector_base | slave_irq);
  }
  // The slave's INT drops during INTA, so a request still pending after it is a new edge.
  master.lines &= ~(1 << kCascadeIrq);
  Cascade();
  return vector;
}

uint8_t DualPic::Read(int chip, int a0) {
  Chip& c = chips_[chip];
  if (a0) return c.imr;
  if (c.poll) {
    // Poll command (OCW3 P=1): the next read acts as an INTA and returns I + the level.
    c.poll = false;
    const int irq = c.Highest();
    if (irq < 0) return 0;
    c.Ack(irq);
    Cascade();
    return static_cast<uint8_t>(0x80 | irq);
  }
  return c.read_isr ? c.isr : c.irr;
}

void DualPic::Write(int chip, int a0, uint8_t value) {
  Chip& c = chips_[chip];
  if (!a0) {
    if (value & 0x10) {
      // ICW1: starts initialisation; clears IMR and ISR, IR7 lowest, special mask off,
      // status reads return IRR (8259A "Initialization Command Words").
      c.init_step = 2;
      c.icw4 = value & 1;
      c.single = value & 2;
      if (value & 8) c.elcr = 0xff & c.elcr_mask;  // LTIM: level for every line
      c.imr = c.isr = 0;
      c.priority_add = 0;
      c.special_mask = c.poll = c.read_isr = false;
      c.auto_eoi = c.rotate_on_aeoi = false;
      c.irr &= c.elcr;  // pending edges are forgotten; level lines still asserted remain
    } else if (value & 0x08) {
      // OCW3.
      if (value & 0x04) c.poll = true;
      if (value & 0x02) c.read_isr = value & 1;
      if (value & 0x40) c.special_mask = value & 0x20;
    } else {
      // OCW2: R, SL, EOI in bits 7-5, level in 2-0.
      const int level = value & 7;
      switch (value >> 5) {
        case 1:    // non-specific EOI
        case 5: {  // rotate on non-specific EOI
          const int irq = c.HighestInService();
          if (irq >= 0) {
            c.isr &= ~(1 << irq);
            if ((value >> 5) == 5) c.priority_add = (irq + 1) & 7;
          }
          break;
        }
        case 3:  // specific EOI
          c.isr &= ~(1 << level);
          break;
        case 7:  // rotate on specific EOI
          c.isr &= ~(1 << level);
          c.priority_add = (level + 1) & 7;
          break;
        case 6:  // set priority: `level` becomes the lowest
          c.priority_add = (level + 1) & 7;
          break;
        case 4:
          c.rotate_on_aeoi = true;
          break;
        case 0:
          c.rotate_on_aeoi = false;
          break;
        default:
          break;  // 2: no operation
      }
    }
    Cascade();
    return;
  }
  switch (c.init_step) {
    case 2:
      c.vector_base = value & 0xf8;  // ICW2: T7-T3 (x86 mode)
      c.init_step = c.single ? (c.icw4 ? 4 : 0) : 3;
      break;
    case 3:
      c.init_step = c.icw4 ? 4 : 0;  // ICW3: the PC's wiring is fixed (slave on IRQ 2)
      break;
    case 4:
      c.auto_eoi = value & 2;  // ICW4: AEOI; uPM must be 1 (8086 mode), the rest is buffering
      c.init_step = 0;
      break;
    default:
      c.imr = value;  // OCW1
      break;
  }
  Cascade();
}

void DualPic::WriteElcr(int chip, uint8_t value) {
  Chip& c = chips_[chip];
  c.elcr = value & c.elcr_mask;
  c.irr &= ~c.elcr | c.lines;  // a line turned level-triggered while low drops its request
}

void DualPic::SaveState(accel::PicState& master, accel::PicState& slave) const {
  for (int i = 0; i < 2; ++i) {
    const Chip& c = chips_[i];
    accel::PicState& s = i == 0 ? master : slave;
    s = {};
    s.last_irr = c.lines, s.irr = c.irr, s.imr = c.imr, s.isr = c.isr;
    s.priority_add = c.priority_add, s.irq_base = c.vector_base;
    s.read_reg_select = c.read_isr, s.poll = c.poll, s.special_mask = c.special_mask;
    s.init_state = c.init_step == 0 ? 0 : static_cast<uint8_t>(c.init_step - 1);
    s.auto_eoi = c.auto_eoi, s.rotate_on_auto_eoi = c.rotate_on_aeoi;
    s.init4 = c.icw4, s.elcr = c.elcr, s.elcr_mask = c.elcr_mask;
  }
}

Status DualPic::RestoreState(const accel::PicState& master, const accel::PicState& slave) {
  for (int i = 0; i < 2; ++i) {
    const accel::PicState& s = i == 0 ? master : slave;
    if (s.init_state > 3) {
      return Fail("the saved {} PIC's initialisation state is {} (0-3)",
                  i == 0 ? "master" : "slave", s.init_state);
    }
  }
  for (int i = 0; i < 2; ++i) {
    const accel::PicState& s = i == 0 ? master : slave;
    Chip& c = chips_[i];
    c.lines = s.last_irr, c.irr = s.irr, c.imr = s.imr, c.isr = s.isr;
    c.priority_add = s.priority_add & 7, c.vector_base = s.irq_base & 0xf8;
    c.read_isr = s.read_reg_select, c.poll = s.poll, c.special_mask = s.special_mask;
    c.init_step = s.init_state == 0 ? 0 : static_cast<uint8_t>(s.init_state + 1);
    c.single = false;
    c.icw4 = s.init4, c.auto_eoi = s.auto_eoi, c.rotate_on_aeoi = s.rotate_on_auto_eoi;
    c.elcr = s.elcr & c.elcr_mask;  // the board's fixed edge lines stay edge
  }
  Cascade();
  return {};
}

}  // namespace vireo::irqchip
