// PIT, after the Intel 8254 datasheet (order 231164): three 16-bit counters at 1.193182 MHz
// behind ports 0x40-0x42 with the control word at 0x43 (modes 0-5, LSB/MSB/word access,
// counter latch and read-back commands, status byte), counter 0 wired to IRQ 0, and the PC's
// port B (0x61) with counter 2's gate (bit 0), the speaker enable (bit 1), the refresh toggle
// (bit 4) and OUT2 (bit 5), which Linux and the guest kit use to calibrate the TSC.
//
// The counters are not ticked: count and OUT are computed from the Clock when read, and
// Poll() raises IRQ 0 for the OUT0 rising edges since the previous poll (missed periods are
// coalesced into one edge, as an edge-triggered controller would see them anyway).
// BCD counting is accepted and reported in the status byte but counts in binary.
#pragma once

#include <array>
#include <cstdint>

#include "accel/vcpu_state.h"
#include "base/result.h"
#include "devices/interrupt_line.h"
#include "devices/irqchip/clock.h"

namespace vireo::irqchip {

class Pit {
 public:
  static constexpr uint16_t kBasePort = 0x40;  // counters 0-2, control word at +3
  static constexpr uint16_t kPortB = 0x61;
  static constexpr uint64_t kHz = 1193182;

  Pit(const Clock& clock, InterruptLine& irq0);

  // `offset` 0-3 from port 0x40.
  uint8_t Read(uint16_t offset);
  void Write(uint16_t offset, uint8_t value);
  uint8_t ReadPortB();
  void WritePortB(uint8_t value);

  // Pulses IRQ 0 when OUT0 rose since the previous poll.
  void Poll();
  // The Clock time of counter 0's next OUT rising edge; UINT64_MAX when none is due.
  uint64_t NextEventNs() const;
  // Connects counter 0's OUT to IRQ 0 (the default) or not: an HPET in legacy replacement
  // takes IRQ 0 (IA-PC HPET 1.0a 2.3.9.2.2), as QEMU disables its PIT's output. The counter
  // keeps counting; reconnecting raises no interrupt for edges while disconnected.
  void SetIrqEnabled(bool enabled);

  // Snapshot state in KVM's kvm_pit_channel_state meanings: count is the loaded N (1-65536;
  // 0 for a counter whose control word came but no count yet, which KVM restores as 65536;
  // a counter never programmed since reset is saved as KVM's reset state, mode 0xff);
  // read_state/write_state 1 LSB, 2 MSB, 3 or 4 for a word's LSB or MSB next; count_latched
  // the access mode of a latched count (0 none, 2 once its LSB was read); count_load_time
  // when counting started on the Clock's time line, `now_ns` (the Clock now) being the save's
  // instant; flags bit 0 IRQ 0 disconnected (KVM_PIT_FLAGS_HPET_LEGACY), bit 1 port B's
  // speaker data (KVM_PIT_FLAGS_SPEAKER_DATA_ON), counter 2's gate being port B bit 0.
  accel::PitState SaveState(uint64_t now_ns) const;
  // `saved_at_ns` is the save's instant on count_load_time's time line: each count resumes
  // as far along as it was then (0: unknown, counts restart from N as KVM's restore does).
  // Not carried, as KVM has no such state: whether a mode 1/5 counter saw its gate trigger
  // (a loaded one counts) and port B bits 2-3. Edges before the save raise nothing.
  vireo::Status RestoreState(const accel::PitState& state, uint64_t saved_at_ns);

  // For tests and diagnostics: the counter's current value and OUT.
  uint16_t count(int counter) const;
  bool out(int counter) const;

 private:
  struct Counter {
    uint8_t mode = 0;
    uint8_t rw = 3;  // 1 LSB, 2 MSB, 3 LSB then MSB
    bool bcd = false;
    uint32_t initial = 0x10000;  // N; 0 written means 65536
    bool loaded = false;         // a count is in and counting has started (or is armed)
    bool programmed = false;     // a control word came since reset (snapshot state only)
    bool triggered = false;      // modes 1 and 5: a gate edge started the count
    bool gate = true;
    uint64_t start_ns = 0;      // when counting (re)started
    uint64_t frozen_ticks = 0;  // modes 0/4 with the gate low: ticks counted so far
    bool write_msb_next = false;
    uint8_t write_lsb = 0;
    bool read_msb_next = false;
    bool count_latched = false;
    uint16_t latched_count = 0;
    bool latched_msb_next = false;
    bool status_latched = false;
    uint8_t latched_status = 0;
    bool null_count = true;
    uint64_t edges_seen = 0;
  };

  uint64_t Ticks(const Counter& c) const;
  uint16_t CountOf(const Counter& c) const;
  bool OutOf(const Counter& c) const;
  static uint64_t RisingEdges(const Counter& c, uint64_t ticks);
  uint8_t Status(const Counter& c) const;
  void Load(Counter& c, uint32_t value);
  void SetGate(Counter& c, bool gate);
  void Latch(Counter& c);

  const Clock& clock_;
  InterruptLine& irq0_;
  std::array<Counter, 3> counters_{};
  uint8_t port_b_ = 0;  // bits 0-3 as written
  bool irq_enabled_ = true;
};

}  // namespace vireo::irqchip
