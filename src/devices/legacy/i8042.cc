#include "devices/legacy/i8042.h"

#include <utility>

namespace vireo {
namespace {

// Status register (read at 0x64).
constexpr uint8_t kStrObf = 0x01;       // output buffer full
constexpr uint8_t kStrSys = 0x04;       // system flag, copied from the command byte
constexpr uint8_t kStrCmd = 0x08;       // last write went to 0x64 (command), not 0x60
constexpr uint8_t kStrUnlocked = 0x10;  // keyboard not inhibited by the keylock
constexpr uint8_t kStrAuxData = 0x20;   // the output buffer holds AUX data

// Controller command byte.
constexpr uint8_t kCtrKbdInt = 0x01;  // IRQ 1 on keyboard output buffer full
constexpr uint8_t kCtrSys = 0x04;
constexpr uint8_t kCtrKbdDis = 0x10;
constexpr uint8_t kCtrAuxDis = 0x20;
constexpr uint8_t kCtrXlate = 0x40;

// Output port (P2).
constexpr uint8_t kOutResetN = 0x01;  // system reset, active low

// Controller commands.
constexpr uint8_t kCmdReadCtr = 0x20;
constexpr uint8_t kCmdWriteCtr = 0x60;
constexpr uint8_t kCmdAuxDisable = 0xa7;
constexpr uint8_t kCmdAuxEnable = 0xa8;
constexpr uint8_t kCmdAuxTest = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdKbdTest = 0xab;
constexpr uint8_t kCmdKbdDisable = 0xad;
constexpr uint8_t kCmdKbdEnable = 0xae;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdWriteKbdBuffer = 0xd2;
constexpr uint8_t kCmdWriteAuxDevice = 0xd4;
constexpr uint8_t kCmdPulseFirst = 0xf0;  // 0xF0-0xFF: pulse output port bits 3:0 low

constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kInterfaceOk = 0x00;
constexpr uint8_t kAuxClockStuckHigh = 0x02;
constexpr uint8_t kDeviceResend = 0xfe;  // PS/2 device reply: "resend" (no device here)

class I8042Port : public BusDevice {
 public:
  I8042Port(std::shared_ptr<I8042> controller, bool is_data)
      : controller_(std::move(controller)), is_data_(is_data) {}

  std::string_view name() const override { return is_data_ ? "i8042-data" : "i8042-command"; }

  void Read(uint64_t offset, std::span<uint8_t> data) override {
    if (data.empty()) return;
    for (auto& byte : data) byte = 0xff;
    if (offset != 0) return;
    data[0] = is_data_ ? controller_->ReadData() : controller_->ReadStatus();
  }

  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (data.empty() || offset != 0) return;
    if (is_data_) {
      controller_->WriteData(data[0]);
    } else {
      controller_->WriteCommand(data[0]);
    }
  }

 private:
  const std::shared_ptr<I8042> controller_;
  const bool is_data_;
};

}  // namespace

std::shared_ptr<I8042> I8042::Create(std::shared_ptr<InterruptLine> keyboard_irq, VmControl& vm) {
  return std::shared_ptr<I8042>(new I8042(std::move(keyboard_irq), vm));
}

// The state a PC BIOS leaves behind: self test passed (SYS), keyboard interrupt and
// scancode translation on, AUX disabled since nothing is attached.
I8042::I8042(std::shared_ptr<InterruptLine> keyboard_irq, VmControl& vm)
    : keyboard_irq_(std::move(keyboard_irq)), vm_(vm) {
  Reset();
}

void I8042::Reset() {
  std::lock_guard lock(mu_);
  status_ = kStrSys | kStrUnlocked;
  command_byte_ = kCtrKbdInt | kCtrSys | kCtrAuxDis | kCtrXlate;
  output_port_ = 0xcf;  // reset inactive, A20 on, clock and data lines high
  output_buffer_ = 0;
  pending_ = Pending::kNone;
  UpdateIrq();
}

std::shared_ptr<BusDevice> I8042::data_port() {
  return std::make_shared<I8042Port>(shared_from_this(), true);
}

std::shared_ptr<BusDevice> I8042::command_port() {
  return std::make_shared<I8042Port>(shared_from_this(), false);
}

uint8_t I8042::ReadData() {
  std::lock_guard lock(mu_);
  // An empty buffer reads as its stale contents, as on the real part.
  const uint8_t value = output_buffer_;
  status_ &= ~(kStrObf | kStrAuxData);
  UpdateIrq();
  return value;
}

uint8_t I8042::ReadStatus() {
  std::lock_guard lock(mu_);
  return status_;  // IBF never reads 1: every write is handled before the vCPU resumes
}

void I8042::WriteData(uint8_t value) {
  bool reset = false;
  {
    std::lock_guard lock(mu_);
    status_ &= ~kStrCmd;
    const Pending pending = std::exchange(pending_, Pending::kNone);
    switch (pending) {
      case Pending::kCommandByte:
        command_byte_ = value;
        status_ = (status_ & ~kStrSys) | (value & kCtrSys);
        UpdateIrq();
        break;
      case Pending::kOutputPort:
        reset = WriteOutputPort(value);
        break;
      case Pending::kKeyboardBuffer:
        PutOutput(value, false);
        break;
      case Pending::kAuxDevice:
        PutOutput(kDeviceResend, true);  // no mouse behind the AUX port
        break;
      case Pending::kNone:
        PutOutput(kDeviceResend, false);  // no keyboard behind the keyboard port
        break;
    }
  }
  if (reset) vm_.RequestStop(StopKind::kReset, 0);
}

void I8042::WriteCommand(uint8_t command) {
  bool reset = false;
  {
    std::lock_guard lock(mu_);
    status_ |= kStrCmd;
    pending_ = Pending::kNone;  // a new command abandons a half-written one
    switch (command) {
      case kCmdReadCtr:
        PutOutput(command_byte_, false);
        break;
      case kCmdWriteCtr:
        pending_ = Pending::kCommandByte;
        break;
      case kCmdAuxDisable:
        command_byte_ |= kCtrAuxDis;
        break;
      case kCmdAuxEnable:
        command_byte_ &= ~kCtrAuxDis;
        break;
      case kCmdAuxTest:
        PutOutput(kAuxClockStuckHigh, false);
        break;
      case kCmdSelfTest:
        PutOutput(kSelfTestPassed, false);
        break;
      case kCmdKbdTest:
        PutOutput(kInterfaceOk, false);
        break;
      case kCmdKbdDisable:
        command_byte_ |= kCtrKbdDis;
        break;
      case kCmdKbdEnable:
        command_byte_ &= ~kCtrKbdDis;
        break;
      case kCmdReadOutputPort:
        PutOutput(output_port_, false);
        break;
      case kCmdWriteOutputPort:
        pending_ = Pending::kOutputPort;
        break;
      case kCmdWriteKbdBuffer:
        pending_ = Pending::kKeyboardBuffer;
        break;
      case kCmdWriteAuxDevice:
        pending_ = Pending::kAuxDevice;
        break;
      default:
        if (command >= kCmdPulseFirst) {
          // Pulse the output port bits whose command bit is 0; only bit 0 (reset) matters.
          reset = (command & kOutResetN) == 0;
        } else {
          ++unknown_commands_;  // a guest mistake: counted and ignored
        }
        break;
    }
  }
  if (reset) vm_.RequestStop(StopKind::kReset, 0);
}

uint8_t I8042::command_byte() const {
  std::lock_guard lock(mu_);
  return command_byte_;
}

uint64_t I8042::unknown_commands() const {
  std::lock_guard lock(mu_);
  return unknown_commands_;
}

void I8042::PutOutput(uint8_t value, bool aux) {
  // One output buffer, as on the real part: a new byte replaces an unread one.
  output_buffer_ = value;
  status_ |= kStrObf;
  if (aux) {
    status_ |= kStrAuxData;
  } else {
    status_ &= ~kStrAuxData;
  }
  UpdateIrq();
}

bool I8042::WriteOutputPort(uint8_t value) {
  output_port_ = value;
  return (value & kOutResetN) == 0;
}

void I8042::UpdateIrq() {
  // IRQ 1 follows "keyboard output buffer full" while the command byte enables it.
  const bool level =
      (status_ & kStrObf) && !(status_ & kStrAuxData) && (command_byte_ & kCtrKbdInt);
  if (level == irq_level_) return;
  irq_level_ = level;
  if (keyboard_irq_) keyboard_irq_->SetLevel(level);
}

I8042State I8042::state() const {
  std::lock_guard lock(mu_);
  return {status_, command_byte_, output_port_, output_buffer_, static_cast<uint8_t>(pending_)};
}

Status I8042::RestoreState(const I8042State& s) {
  if (s.pending > static_cast<uint8_t>(Pending::kAuxDevice)) {
    return Fail("i8042: unknown pending command {}", s.pending);
  }
  std::lock_guard lock(mu_);
  status_ = s.status;
  command_byte_ = s.command_byte;
  output_port_ = s.output_port;
  output_buffer_ = s.output_buffer;
  pending_ = static_cast<Pending>(s.pending);
  UpdateIrq();
  return {};
}

}  // namespace vireo
