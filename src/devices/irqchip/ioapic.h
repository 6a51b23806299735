// IOAPIC, after the Intel 82093AA datasheet (order 290566): 24 redirection entries behind
// the IOREGSEL (0x00) / IOWIN (0x10) window, edge and level triggering with Remote IRR, and
// the EOI broadcast from the local APICs that ends a level interrupt (3.2.4).
//
// Lines are logical: SetLevel(pin, true) means "asserted" whatever the entry's polarity bit
// (as KVM's in-kernel IOAPIC treats irq levels); the polarity is kept for the guest to read.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "accel/vcpu_state.h"
#include "base/result.h"
#include "devices/irqchip/clock.h"

namespace vireo::irqchip {

class Ioapic {
 public:
  static constexpr int kPins = 24;
  static constexpr uint64_t kDefaultBase = 0xfec00000;
  static constexpr uint64_t kSize = 0x1000;
  // Register offsets in the MMIO page (82093AA 3.1) and register indices (3.2).
  static constexpr uint64_t kIoRegSel = 0x00;
  static constexpr uint64_t kIoWin = 0x10;
  static constexpr uint64_t kEoi = 0x40;  // IOAPIC version 0x20 EOI register, accepted too
  static constexpr uint8_t kIoApicId = 0x00;
  static constexpr uint8_t kIoApicVer = 0x01;
  static constexpr uint8_t kIoApicArb = 0x02;
  static constexpr uint8_t kIoRedTbl = 0x10;
  // Redirection entry bits (3.2.4).
  static constexpr uint64_t kDeliveryStatus = 1u << 12;
  static constexpr uint64_t kPolarityLow = 1u << 13;
  static constexpr uint64_t kRemoteIrr = 1u << 14;
  static constexpr uint64_t kLevel = 1u << 15;
  static constexpr uint64_t kMasked = 1u << 16;
  // Bits the guest may write: everything but delivery status and Remote IRR, destination in
  // 63:56 (the rest reserved).
  static constexpr uint64_t kWritable = 0xff000000'0001afffULL;

  // `deliver` puts a message on the APIC bus; false when no local APIC accepted it (the
  // entry then stays Remote IRR clear so a level line retries on the next change).
  using Deliver = std::function<bool(const ApicMessage&)>;
  explicit Ioapic(Deliver deliver);

  uint32_t Read(uint64_t offset) const;
  void Write(uint64_t offset, uint32_t value);

  // A device's line into `pin` (0-23); out-of-range pins are ignored (counted by the caller).
  void SetLevel(int pin, bool asserted);
  // A local APIC's EOI of a level-triggered `vector`: clears Remote IRR of the entries that
  // use it and redelivers those whose line is still asserted.
  void Eoi(uint8_t vector);

  // Snapshot state in KVM's kvm_ioapic_state meanings: IRR holds the asserted level-triggered
  // lines (an edge is delivered as it comes, so none is pending), the redirection entries
  // with Remote IRR. Restore sets the registers without delivering anything: a level line
  // still up with Remote IRR clear is delivered at its next change or EOI, as the restored
  // local APICs are not in place yet when the VM's state is restored.
  accel::IoApicState SaveState() const;
  // Refuses another base address (the IOAPIC sits at kDefaultBase).
  Status RestoreState(const accel::IoApicState& state);

  uint64_t redirection(int pin) const { return redirection_[pin]; }
  bool line(int pin) const { return (lines_ >> pin) & 1; }
  uint8_t id() const { return id_; }

 private:
  void Service(int pin);

  Deliver deliver_;
  uint8_t ioregsel_ = 0;
  uint8_t id_ = 0;
  uint32_t lines_ = 0;  // asserted lines, one bit per pin
  std::array<uint64_t, kPins> redirection_{};
};

}  // namespace vireo::irqchip
