#include "devices/legacy/serial_8250.h"

#include <algorithm>
#include <utility>

namespace vireo {
namespace {

// IER, §8.7.
constexpr uint8_t kIerErbfi = 0x01;  // received data available
constexpr uint8_t kIerEtbei = 0x02;  // transmitter holding register empty
constexpr uint8_t kIerElsi = 0x04;   // receiver line status
constexpr uint8_t kIerEdssi = 0x08;  // modem status
constexpr uint8_t kIerMask = 0x0f;

// IIR, §8.6 and Table IV. Bit 0 set = no interrupt pending; bits 7:6 = FIFOs enabled.
constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirReceivedData = 0x04;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirFifosEnabled = 0xc0;

// FCR, §8.5.
constexpr uint8_t kFcrFifoEnable = 0x01;
constexpr uint8_t kFcrRcvrReset = 0x02;
constexpr uint8_t kFcrStoredMask = 0xc9;  // FE, DMA mode select, trigger level

// LCR, §8.1.
constexpr uint8_t kLcrDlab = 0x80;

// MCR, §8.8.
constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;  // on a PC, gates the UART's INTR onto the ISA IRQ line
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

// LSR, §8.4.
constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrOe = 0x02;
constexpr uint8_t kLsrErrors = 0x1e;  // OE, PE, FE, BI
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;

// MSR, §8.9: deltas in the low nibble, line states in the high nibble.
constexpr uint8_t kMsrDcts = 0x01;
constexpr uint8_t kMsrDdsr = 0x02;
constexpr uint8_t kMsrTeri = 0x04;
constexpr uint8_t kMsrDdcd = 0x08;
constexpr uint8_t kMsrDeltas = 0x0f;
constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;
// Outside loopback the host side looks like a connected, ready modem.
constexpr uint8_t kMsrHostLines = kMsrDcd | kMsrDsr | kMsrCts;

}  // namespace

Serial8250::Serial8250(std::shared_ptr<InterruptLine> irq,
                       std::function<void(std::span<const uint8_t>)> output)
    : irq_(std::move(irq)), output_(std::move(output)), msr_(kMsrHostLines) {}

void Serial8250::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  // An 8-bit ISA device: a wider access is a run of byte accesses to successive ports.
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < kSize ? ReadRegister(offset + i) : 0xff;
  }
  UpdateIrq();
}

void Serial8250::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < data.size() && offset + i < kSize; ++i) {
    WriteRegister(offset + i, data[i]);
  }
  UpdateIrq();
}

uint8_t Serial8250::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kRbrThrDll:
      if (lcr_ & kLcrDlab) return dll_;
      return PopRx();
    case kIerDlm:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIirFcr: {
      const uint8_t id = PendingInterrupt();
      // Table IV: reading the IIR while it shows THRE clears that interrupt.
      if (id == kIirThre) thr_interrupt_ = false;
      return id | ((fcr_ & kFcrFifoEnable) ? kIirFifosEnabled : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      // Transmission is instant, so THRE and TEMT are always set.
      const uint8_t lsr = lsr_ | (rx_count_ ? kLsrDr : 0) | kLsrThre | kLsrTemt;
      lsr_ = 0;  // §8.4: the error bits clear when the LSR is read
      return lsr;
    }
    case kMsr: {
      const uint8_t msr = msr_;
      msr_ &= ~kMsrDeltas;  // §8.9: the delta bits clear when the MSR is read
      return msr;
    }
    case kScr:
      return scr_;
    default:
      return 0xff;
  }
}

void Serial8250::WriteRegister(uint64_t offset, uint8_t value) {
  switch (offset) {
    case kRbrThrDll:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
      } else {
        Transmit(value);
      }
      return;
    case kIerDlm:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Table IV: THR is always empty, so enabling ETBEI raises the THRE interrupt at once;
      // disabling it drops a pending one.
      if ((value & kIerEtbei) && !(ier_ & kIerEtbei)) thr_interrupt_ = true;
      if (!(value & kIerEtbei)) thr_interrupt_ = false;
      ier_ = value & kIerMask;
      return;
    case kIirFcr:
      // §8.5: changing FE, or setting RCVR FIFO reset, empties the receive FIFO.
      if ((value & kFcrRcvrReset) || ((value ^ fcr_) & kFcrFifoEnable)) ClearRx();
      fcr_ = value & kFcrStoredMask;
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & kMcrMask;
      UpdateModemInputs();
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR writes are factory-test only: ignored
  }
}

void Serial8250::Transmit(uint8_t value) {
  if (mcr_ & kMcrLoop) {
    PushRx(value);  // §8.8: in loopback, TSR feeds RSR
  } else {
    ++tx_bytes_;
    if (output_) output_(std::span<const uint8_t>(&value, 1));
  }
  // Table IV: the THR write clears the THRE interrupt; the byte leaves at once, THR is empty
  // again and the interrupt comes back if enabled.
  thr_interrupt_ = (ier_ & kIerEtbei) != 0;
}

void Serial8250::PushRx(uint8_t value) {
  if (rx_count_ == kRxFifoSize) {
    ++rx_dropped_;
    lsr_ |= kLsrOe;  // §8.4: a character arrived with the FIFO full
    return;
  }
  rx_[(rx_head_ + rx_count_) % kRxFifoSize] = value;
  ++rx_count_;
}

uint8_t Serial8250::PopRx() {
  if (rx_count_ == 0) return 0;
  const uint8_t value = rx_[rx_head_];
  rx_head_ = (rx_head_ + 1) % kRxFifoSize;
  --rx_count_;
  return value;
}

void Serial8250::ClearRx() {
  rx_head_ = 0;
  rx_count_ = 0;
}

void Serial8250::UpdateModemInputs() {
  uint8_t lines = kMsrHostLines;
  if (mcr_ & kMcrLoop) {
    // §8.8: in loopback the four modem outputs drive the four modem inputs.
    lines = ((mcr_ & kMcrRts) ? kMsrCts : 0) | ((mcr_ & kMcrDtr) ? kMsrDsr : 0) |
            ((mcr_ & kMcrOut1) ? kMsrRi : 0) | ((mcr_ & kMcrOut2) ? kMsrDcd : 0);
  }
  const uint8_t old = msr_;
  const uint8_t changed = (old ^ lines) & ~kMsrDeltas;
  uint8_t deltas = old & kMsrDeltas;
  if (changed & kMsrCts) deltas |= kMsrDcts;
  if (changed & kMsrDsr) deltas |= kMsrDdsr;
  if ((old & kMsrRi) && !(lines & kMsrRi)) deltas |= kMsrTeri;  // trailing edge only
  if (changed & kMsrDcd) deltas |= kMsrDdcd;
  msr_ = lines | deltas;
}

uint8_t Serial8250::PendingInterrupt() const {
  // Table IV, highest priority first.
  if ((ier_ & kIerElsi) && (lsr_ & kLsrErrors)) return kIirLineStatus;
  if ((ier_ & kIerErbfi) && rx_count_ > 0) return kIirReceivedData;
  if ((ier_ & kIerEtbei) && thr_interrupt_) return kIirThre;
  if ((ier_ & kIerEdssi) && (msr_ & kMsrDeltas)) return kIirModemStatus;
  return kIirNoInterrupt;
}

void Serial8250::UpdateIrq() {
  // The PC wires INTR to the ISA line through a buffer enabled by OUT2; loopback forces the
  // modem outputs, OUT2 included, inactive (§8.8), so the line is quiet in loopback.
  const bool level =
      PendingInterrupt() != kIirNoInterrupt && (mcr_ & kMcrOut2) && !(mcr_ & kMcrLoop);
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_) irq_->SetLevel(level);
}

size_t Serial8250::EnqueueInput(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  const size_t accepted = std::min(bytes.size(), kRxFifoSize - rx_count_);
  for (size_t i = 0; i < accepted; ++i) PushRx(bytes[i]);
  if (accepted < bytes.size()) {
    rx_dropped_ += bytes.size() - accepted;
    lsr_ |= kLsrOe;
  }
  UpdateIrq();
  return accepted;
}

size_t Serial8250::input_space() const {
  std::lock_guard lock(mu_);
  return kRxFifoSize - rx_count_;
}

uint64_t Serial8250::rx_dropped() const {
  std::lock_guard lock(mu_);
  return rx_dropped_;
}

uint64_t Serial8250::tx_bytes() const {
  std::lock_guard lock(mu_);
  return tx_bytes_;
}

Serial8250State Serial8250::state() const {
  std::lock_guard lock(mu_);
  Serial8250State s{ier_, fcr_, lcr_, mcr_, lsr_, msr_, scr_, dll_, dlm_, thr_interrupt_, {}};
  for (size_t i = 0; i < rx_count_; ++i) s.rx_fifo.push_back(rx_[(rx_head_ + i) % kRxFifoSize]);
  return s;
}

Status Serial8250::RestoreState(const Serial8250State& s) {
  if (s.rx_fifo.size() > kRxFifoSize) {
    return Fail("serial-8250: {} bytes in the receive FIFO, more than its {}", s.rx_fifo.size(),
                kRxFifoSize);
  }
  std::lock_guard lock(mu_);
  ier_ = s.ier, fcr_ = s.fcr, lcr_ = s.lcr, mcr_ = s.mcr, lsr_ = s.lsr, msr_ = s.msr;
  scr_ = s.scr, dll_ = s.dll, dlm_ = s.dlm, thr_interrupt_ = s.thr_interrupt;
  rx_head_ = 0;
  rx_count_ = s.rx_fifo.size();
  std::copy(s.rx_fifo.begin(), s.rx_fifo.end(), rx_.begin());
  UpdateIrq();
  return {};
}

}  // namespace vireo
