#include "devices/irqchip/ioapic.h"

namespace vireo::irqchip {

Ioapic::Ioapic(Deliver deliver) : deliver_(std::move(deliver)) {
  for (uint64_t& e : redirection_) e = kMasked;  // reset: every entry masked (3.2.4)
}

uint32_t Ioapic::Read(uint64_t offset) const {
  if (offset == kIoRegSel) return ioregsel_;
  if (offset != kIoWin) return 0;
  switch (ioregsel_) {
    case kIoApicId:
      return uint32_t{id_} << 24;
    case kIoApicVer:
      // Maximum redirection entry (pins - 1) in 23:16, version 0x11 (3.2.2).
      return (uint32_t{kPins - 1} << 16) | 0x11;
    case kIoApicArb:
      return uint32_t{id_} << 24;
    default:
      break;
  }
  if (ioregsel_ >= kIoRedTbl && ioregsel_ < kIoRedTbl + 2 * kPins) {
    const uint64_t e = redirection_[(ioregsel_ - kIoRedTbl) / 2];
    return static_cast<uint32_t>((ioregsel_ & 1) ? e >> 32 : e);
  }
  return 0;  // an unimplemented register reads as zero
}

void Ioapic::Write(uint64_t offset, uint32_t value) {
  if (offset == kIoRegSel) {
    ioregsel_ = static_cast<uint8_t>(value);
    return;
  }
  if (offset == kEoi) {
    Eoi(static_cast<uint8_t>(value));
    return;
  }
  if (offset != kIoWin) return;
  if (ioregsel_ == kIoApicId) {
    id_ = (value >> 24) & 0x0f;
    return;
  }
  if (ioregsel_ < kIoRedTbl || ioregsel_ >= kIoRedTbl + 2 * kPins) return;  // read-only/none
  const int pin = (ioregsel_ - kIoRedTbl) / 2;
  uint64_t e = redirection_[pin];
  const uint64_t keep = e & ~kWritable;
  if (ioregsel_ & 1) {
    e = (e & 0xffffffffULL) | (uint64_t{value} << 32);
  } else {
    e = (e & 0xffffffff00000000ULL) | value;
  }
  e = (e & kWritable) | keep;
  // An edge entry has no Remote IRR (3.2.4: "undefined for edge"; kept clear here).
  if (!(e & kLevel)) e &= ~kRemoteIrr;
  redirection_[pin] = e;
  // Unmasking (or reprogramming) a level entry whose line is up delivers it now.
  if ((e & kLevel) && line(pin)) Service(pin);
}

void Ioapic::SetLevel(int pin, bool asserted) {
  if (pin < 0 || pin >= kPins) return;
  const bool was = line(pin);
  const uint32_t bit = 1u << pin;
  lines_ = asserted ? (lines_ | bit) : (lines_ & ~bit);
  const uint64_t e = redirection_[pin];
  if (!asserted) return;
  // Edge: only a rising edge counts; a masked edge is lost (3.2.4 "Interrupt Mask").
  if (!(e & kLevel) && was) return;
  Service(pin);
}

void Ioapic::Service(int pin) {
  uint64_t& e = redirection_[pin];
  if (e & kMasked) return;
  const bool level = e & kLevel;
  if (level && (e & kRemoteIrr)) return;  // the previous one is not EOIed yet
  ApicMessage m;
  m.vector = static_cast<uint8_t>(e);
  m.delivery_mode = static_cast<uint8_t>((e >> 8) & 7);
  m.logical = (e >> 11) & 1;
  m.level = level;
  m.destination = static_cast<uint32_t>(e >> 56);
  const bool accepted = deliver_(m);
  if (level && accepted) e |= kRemoteIrr;
}

void Ioapic::Eoi(uint8_t vector) {
  for (int pin = 0; pin < kPins; ++pin) {
    uint64_t& e = redirection_[pin];
    if (!(e & kLevel) || !(e & kRemoteIrr) || static_cast<uint8_t>(e) != vector) continue;
    e &= ~kRemoteIrr;
    if (line(pin)) Service(pin);
  }
}

accel::IoApicState Ioapic::SaveState() const {
  accel::IoApicState s;
  s.base_address = kDefaultBase;
  s.ioregsel = ioregsel_;
  s.id = id_;
  for (int pin = 0; pin < kPins; ++pin) {
    s.redirection[pin] = redirection_[pin];
    if ((redirection_[pin] & kLevel) && line(pin)) s.irr |= 1u << pin;
  }
  return s;
}

Status Ioapic::RestoreState(const accel::IoApicState& s) {
  if (s.base_address != kDefaultBase) {
    return Fail("the saved IOAPIC is at {:#x}; Vireo's IOAPIC is at {:#x}", s.base_address,
                kDefaultBase);
  }
  ioregsel_ = static_cast<uint8_t>(s.ioregsel);
  id_ = static_cast<uint8_t>(s.id & 0x0f);
  // KVM's IRR may also hold an edge that was not delivered (masked): taken as the line's
  // level, so it raises no second interrupt.
  lines_ = s.irr & ((1u << kPins) - 1);
  for (int pin = 0; pin < kPins; ++pin) {
    uint64_t e = s.redirection[pin] & (kWritable | kRemoteIrr);
    if (!(e & kLevel)) e &= ~kRemoteIrr;
    redirection_[pin] = e;
  }
  return {};
}

}  // namespace vireo::irqchip
