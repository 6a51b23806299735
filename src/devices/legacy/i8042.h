// 8042 keyboard controller (PS/2 "KBC"), with no keyboard or mouse attached.
//
// Follows the IBM PS/2 Hardware Interface Technical Reference, keyboard/auxiliary device
// controller section: status register, controller command byte, controller commands
// (0x20-0xFF), output port.
// The guest sees two ports: data at 0x60 and status/command at 0x64. The VMM inserts
// data_port() at 0x60 (size 1) and command_port() at 0x64 (size 1); 0x61 (system control
// port B) is not part of the 8042 and is left to whoever owns it.
//
// What it is for: Linux's i8042 driver probes it (self test, command byte, AUX test) and
// the guest reboots through it (command 0xFE, or output port bit 0 via 0xD1: Linux's
// "reboot=k").
//
// No devices behind the ports: a byte written to the keyboard (data port, no command
// pending) is answered with 0xFE ("resend"), as keyboard data with IRQ 1. Linux's libps2
// takes 0xFE as a NAK and fails the command at once, so atkbd's probe (GETID, then
// SETLEDS) gives up in microseconds instead of waiting out its timeouts; no keyboard is
// registered and boot goes on. The AUX port answers its interface test (0xA9) with 0x02
// ("clock line stuck high", the idle state of an empty port), which makes Linux skip the
// mouse; 0xD3 (AUX loopback) is not implemented, so its data byte goes to the keyboard and
// its 0xFE reply lacks STR.AUXDATA, which Linux's i8042_check_aux treats as "no loop".
// There is no IRQ 12 line.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "base/result.h"
#include "devices/bus_device.h"
#include "devices/interrupt_line.h"
#include "devices/vm_control.h"

namespace vireo {

// The controller's state for snapshots (rule 4). `pending` is what the next data-port write
// means (0 none, 1 command byte, 2 output port, 3 keyboard buffer, 4 AUX device).
struct I8042State {
  uint8_t status = 0, command_byte = 0, output_port = 0, output_buffer = 0, pending = 0;
};

class I8042 : public std::enable_shared_from_this<I8042> {
 public:
  static constexpr uint64_t kDataPort = 0x60;
  static constexpr uint64_t kCommandPort = 0x64;
  static constexpr uint32_t kKeyboardIrq = 1;

  // `vm` must outlive the controller. `keyboard_irq` (IRQ 1) may be null.
  static std::shared_ptr<I8042> Create(std::shared_ptr<InterruptLine> keyboard_irq, VmControl& vm);

  // Bus adapters, each one byte wide; they keep the controller alive.
  std::shared_ptr<BusDevice> data_port();
  std::shared_ptr<BusDevice> command_port();

  // Port accesses, as the adapters make them.
  uint8_t ReadData();
  void WriteData(uint8_t value);
  uint8_t ReadStatus();
  void WriteCommand(uint8_t command);

  // Back to the power-on state (the VMM keeps this object across a guest reboot).
  void Reset();

  uint8_t command_byte() const;
  uint64_t unknown_commands() const;

  I8042State state() const;
  // Refuses an unknown `pending`; drives IRQ 1 to match the new state.
  Status RestoreState(const I8042State& state);

 private:
  I8042(std::shared_ptr<InterruptLine> keyboard_irq, VmControl& vm);

  // What the next data-port write means (set by commands that take a parameter).
  enum class Pending : uint8_t { kNone, kCommandByte, kOutputPort, kKeyboardBuffer, kAuxDevice };

  void PutOutput(uint8_t value, bool aux);
  // Returns whether the write pulls the reset line (bit 0 low).
  bool WriteOutputPort(uint8_t value);
  void UpdateIrq();

  const std::shared_ptr<InterruptLine> keyboard_irq_;
  VmControl& vm_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  uint8_t status_ = 0;        // status register (STR)
  uint8_t command_byte_ = 0;  // controller command byte (CTR): read by 0x20, written by 0x60
  uint8_t output_port_ = 0;   // P2: bit 0 = system reset (active low), bit 1 = A20 gate
  uint8_t output_buffer_ = 0;
  Pending pending_ = Pending::kNone;
  bool irq_level_ = false;
  uint64_t unknown_commands_ = 0;
};

}  // namespace vireo
