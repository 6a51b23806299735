// 16550A UART, as on a PC's COM1 (port 0x3f8, 8 registers, IRQ 4).
//
// Follows the National Semiconductor "PC16550D Universal Asynchronous Receiver/Transmitter
// with FIFOs" datasheet; "§8.n" below is its section 8 (Registers), "Table IV" its
// interrupt control table.
// Transmission is instant: a byte written to THR goes straight to the output callback, so
// LSR.THRE and LSR.TEMT always read 1. Received bytes come from the host through
// EnqueueInput() into a bounded receive FIFO.
//
// Simplifications, all invisible to Linux's 8250 driver:
//  - The receive FIFO is kRxFifoSize bytes deep (not 16) and is used even when FCR.FE is
//    clear (16450 mode); the received-data interrupt is raised whenever data is waiting
//    (trigger level 1), so the character-timeout identification (IIR = 0xc) is never used.
//  - No parity/framing/break errors are ever produced; OE is set when host input is
//    dropped because the FIFO is full (§8.4, bit 1).
//  - Host input keeps arriving in loopback mode (real silicon disconnects SIN).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

#include "devices/bus_device.h"
#include "devices/interrupt_line.h"

namespace vireo {

// The UART's guest-visible state, for snapshots (rule 4): registers as in §8 and the
// receive FIFO's contents, oldest byte first.
struct Serial8250State {
  uint8_t ier = 0, fcr = 0, lcr = 0, mcr = 0, lsr = 0, msr = 0, scr = 0, dll = 0, dlm = 0;
  bool thr_interrupt = false;
  std::vector<uint8_t> rx_fifo;
};

class Serial8250 : public BusDevice {
 public:
  static constexpr uint64_t kCom1Base = 0x3f8;
  static constexpr uint64_t kSize = 8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr size_t kRxFifoSize = 4096;

  // `output` receives every byte the guest transmits (one byte per call). It is called
  // with the device lock held, from a vCPU thread: it must not block and must not call
  // back into this device. `irq` is driven as a level; SetLevel is called only on change.
  Serial8250(std::shared_ptr<InterruptLine> irq,
             std::function<void(std::span<const uint8_t>)> output);

  std::string_view name() const override { return "serial-8250"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Host side, thread-safe. Queues as much of `bytes` as fits and returns how many were
  // queued; the rest is dropped, counted in rx_dropped() and reported to the guest as an
  // overrun (LSR.OE).
  size_t EnqueueInput(std::span<const uint8_t> bytes);
  // Free bytes in the receive FIFO: a host reader can stop reading when it is 0.
  size_t input_space() const;
  uint64_t rx_dropped() const;
  uint64_t tx_bytes() const;

  Serial8250State state() const;
  // Refuses a FIFO larger than kRxFifoSize; drives the IRQ line to match the new state.
  Status RestoreState(const Serial8250State& state);

 private:
  // Register offsets (§8, Table II). DLAB = LCR bit 7 selects DLL/DLM at 0 and 1.
  enum Offset : uint64_t {
    kRbrThrDll = 0,
    kIerDlm = 1,
    kIirFcr = 2,
    kLcr = 3,
    kMcr = 4,
    kLsr = 5,
    kMsr = 6,
    kScr = 7,
  };

  uint8_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint8_t value);
  void Transmit(uint8_t value);
  void PushRx(uint8_t value);  // drops and counts when full
  uint8_t PopRx();
  void ClearRx();
  // Recomputes the modem status inputs (loopback or the fixed host lines) and their deltas.
  void UpdateModemInputs();
  // The interrupt identification the IIR would show now (§8.6, Table IV).
  uint8_t PendingInterrupt() const;
  // Drives the line to match PendingInterrupt() gated by MCR.OUT2.
  void UpdateIrq();

  const std::shared_ptr<InterruptLine> irq_;
  const std::function<void(std::span<const uint8_t>)> output_;

  mutable std::mutex mu_;
  // Registers, guarded by mu_, named as in the datasheet.
  uint8_t ier_ = 0;
  uint8_t fcr_ = 0;  // write-only; FE (bit 0) is reflected in IIR bits 7:6
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t lsr_ = 0;  // only the sticky error bits; DR/THRE/TEMT are derived
  uint8_t msr_ = 0;
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;  // 9600 baud at reset, as the PC BIOS leaves it
  uint8_t dlm_ = 0;
  bool thr_interrupt_ =
      false;                // THRE interrupt pending (Table IV: cleared by IIR read / THR write)
  bool irq_level_ = false;  // what we last told irq_
  // Receive FIFO: a fixed ring, so neither the guest nor the host path allocates.
  std::array<uint8_t, kRxFifoSize> rx_{};
  size_t rx_head_ = 0;
  size_t rx_count_ = 0;
  uint64_t rx_dropped_ = 0;
  uint64_t tx_bytes_ = 0;
};

}  // namespace vireo
