#include "devices/irqchip/pit.h"

#include <limits>

namespace vireo::irqchip {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000;

uint64_t NsToTicks(uint64_t ns) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * Pit::kHz / kNsPerSecond);
}
// The first time at which NsToTicks reaches `ticks`.
uint64_t TicksToNs(uint64_t ticks) {
  return static_cast<uint64_t>(
      (static_cast<unsigned __int128>(ticks) * kNsPerSecond + Pit::kHz - 1) / Pit::kHz);
}

}  // namespace

Pit::Pit(const Clock& clock, InterruptLine& irq0) : clock_(clock), irq0_(irq0) {
  counters_[2].gate = false;  // port B bit 0 resets to 0; counters 0 and 1 are tied high
}

uint64_t Pit::Ticks(const Counter& c) const {
  // Modes 0 and 4 hold their count while the gate is low (8254 "GATE" table).
  if (!c.gate && (c.mode == 0 || c.mode == 4)) return c.frozen_ticks;
  return NsToTicks(clock_.NowNs() - c.start_ns);
}

uint64_t Pit::RisingEdges(const Counter& c, uint64_t d) {
  const uint64_t n = c.initial;
  switch (c.mode) {
    case 0:
    case 1:
      return d >= n ? 1 : 0;  // OUT goes high at terminal count and stays there
    case 2:
    case 3:
      return d / n;  // OUT rises as each period reloads
    default:
      return d >= n + 1 ? 1 : 0;  // modes 4/5: low for one clock at terminal count
  }
}

bool Pit::OutOf(const Counter& c) const {
  const bool started = c.loaded && (c.mode == 1 || c.mode == 5 ? c.triggered : true);
  if (!started) return c.mode != 0;  // mode 0 sets OUT low on the control word
  const uint64_t n = c.initial;
  const uint64_t d = Ticks(c);
  switch (c.mode) {
    case 0:
      return d >= n;
    case 1:
      return d >= n;
    case 2:
      if (!c.gate) return true;
      return d % n != n - 1;  // low for the clock where the count is 1
    case 3:
      if (!c.gate) return true;
      return d % n < (n + 1) / 2;  // high for the first (larger) half
    default:
      return d != n;
  }
}

uint16_t Pit::CountOf(const Counter& c) const {
  const bool started = c.loaded && (c.mode == 1 || c.mode == 5 ? c.triggered : true);
  if (!started) return static_cast<uint16_t>(c.initial);
  const uint64_t n = c.initial;
  const uint64_t d = Ticks(c);
  switch (c.mode) {
    case 2:
      return static_cast<uint16_t>(n - d % n);
    case 3: {
      // Decrements by two through each half period (8254 mode 3).
      const uint64_t phase = d % n;
      const uint64_t high = (n + 1) / 2;
      return static_cast<uint16_t>(phase < high ? n - 2 * phase : n - 2 * (phase - high));
    }
    default:
      return static_cast<uint16_t>(n - d);  // wraps after terminal count and keeps counting
  }
}

uint8_t Pit::Status(const Counter& c) const {
  // Read-back status byte: OUT, null count, RW, mode, BCD.
  return static_cast<uint8_t>((OutOf(c) ? 0x80 : 0) | (c.null_count ? 0x40 : 0) | (c.rw << 4) |
                              (c.mode << 1) | (c.bcd ? 1 : 0));
}

uint16_t Pit::count(int counter) const { return CountOf(counters_[counter]); }
bool Pit::out(int counter) const { return OutOf(counters_[counter]); }

void Pit::Load(Counter& c, uint32_t value) {
  c.initial = value == 0 ? (c.bcd ? 10000 : 0x10000) : value;
  // A reload in modes 2/3 takes effect at the end of the current period; restarting now is
  // indistinguishable for a guest that reprograms a stopped or new counter.
  c.loaded = true;
  c.null_count = false;
  c.start_ns = clock_.NowNs();
  c.frozen_ticks = 0;
  c.edges_seen = 0;
  if (c.mode == 1 || c.mode == 5) c.triggered = false;  // waits for a gate edge
}

void Pit::SetGate(Counter& c, bool gate) {
  if (gate == c.gate) return;
  const uint64_t now = clock_.NowNs();
  if (!gate) {
    if (c.mode == 0 || c.mode == 4) c.frozen_ticks = NsToTicks(now - c.start_ns);
    c.gate = false;
    return;
  }
  c.gate = true;
  switch (c.mode) {
    case 0:
    case 4:
      // Resume where the count stopped.
      c.start_ns = now - TicksToNs(c.frozen_ticks);
      break;
    default:
      // Modes 1, 2, 3, 5: a rising gate (re)starts the count from N.
      if (c.loaded) {
        c.start_ns = now;
        c.edges_seen = 0;
        c.triggered = true;
      }
      break;
  }
}

void Pit::Latch(Counter& c) {
  if (c.count_latched) return;  // a second latch before the read is ignored
  c.count_latched = true;
  c.latched_count = CountOf(c);
  c.latched_msb_next = false;
}

uint8_t Pit::Read(uint16_t offset) {
  if (offset > 2) return 0xff;  // the control word register is write-only
  Counter& c = counters_[offset];
  if (c.status_latched) {
    c.status_latched = false;
    return c.latched_status;
  }
  uint16_t value;
  bool* msb_next;
  if (c.count_latched) {
    value = c.latched_count;
    msb_next = &c.latched_msb_next;
  } else {
    value = CountOf(c);
    msb_next = &c.read_msb_next;
  }
  uint8_t byte;
  bool done = true;
  switch (c.rw) {
    case 1:
      byte = static_cast<uint8_t>(value);
      break;
    case 2:
      byte = static_cast<uint8_t>(value >> 8);
      break;
    default:
      byte = static_cast<uint8_t>(*msb_next ? value >> 8 : value);
      done = *msb_next;
      *msb_next = !*msb_next;
      break;
  }
  if (c.count_latched && done) c.count_latched = false;
  return byte;
}

void Pit::Write(uint16_t offset, uint8_t value) {
  if (offset < 3) {
    Counter& c = counters_[offset];
    switch (c.rw) {
      case 1:
        Load(c, value);
        break;
      case 2:
        Load(c, uint32_t{value} << 8);
        break;
      default:
        if (!c.write_msb_next) {
          c.write_lsb = value;
          c.write_msb_next = true;
          // Mode 0: writing the first byte stops the count (8254 mode 0).
          if (c.mode == 0) c.loaded = false;
        } else {
          c.write_msb_next = false;
          Load(c, c.write_lsb | (uint32_t{value} << 8));
        }
        break;
    }
    return;
  }
  if (offset != 3) return;
  const int sc = value >> 6;
  if (sc == 3) {
    // Read-back: bit 5 clear latches counts, bit 4 clear latches status, bits 1-3 select.
    for (int i = 0; i < 3; ++i) {
      if (!(value & (2 << i))) continue;
      Counter& c = counters_[i];
      if (!(value & 0x20)) Latch(c);
      if (!(value & 0x10) && !c.status_latched) {
        c.status_latched = true;
        c.latched_status = Status(c);
      }
    }
    return;
  }
  Counter& c = counters_[sc];
  const uint8_t rw = (value >> 4) & 3;
  if (rw == 0) {
    Latch(c);
    return;
  }
  c.programmed = true;
  c.rw = rw;
  c.mode = (value >> 1) & 7;
  if (c.mode > 5) c.mode -= 4;  // 6 and 7 are modes 2 and 3
  c.bcd = value & 1;
  c.loaded = false;
  c.triggered = false;
  c.null_count = true;
  c.write_msb_next = false;
  c.read_msb_next = false;
  c.count_latched = false;
  c.status_latched = false;
  c.edges_seen = 0;
}

uint8_t Pit::ReadPortB() {
  // Bit 4 toggles with each DRAM refresh (about every 15 us); bit 5 is OUT2.
  const bool refresh = (clock_.NowNs() / 15085) & 1;
  return static_cast<uint8_t>((port_b_ & 0x0f) | (refresh ? 0x10 : 0) |
                              (OutOf(counters_[2]) ? 0x20 : 0));
}

void Pit::WritePortB(uint8_t value) {
  port_b_ = value & 0x0f;
  SetGate(counters_[2], value & 1);
}

void Pit::SetIrqEnabled(bool enabled) {
  Counter& c = counters_[0];
  if (enabled && !irq_enabled_) c.edges_seen = RisingEdges(c, Ticks(c));
  irq_enabled_ = enabled;
}

void Pit::Poll() {
  if (!irq_enabled_) return;
  Counter& c = counters_[0];
  if (!c.loaded || ((c.mode == 1 || c.mode == 5) && !c.triggered)) return;
  if (!c.gate && c.mode != 0 && c.mode != 4) return;
  const uint64_t edges = RisingEdges(c, Ticks(c));
  if (edges > c.edges_seen) {
    c.edges_seen = edges;
    irq0_.Pulse();
  }
}

uint64_t Pit::NextEventNs() const {
  const Counter& c = counters_[0];
  if (!irq_enabled_ || !c.loaded || !c.gate || ((c.mode == 1 || c.mode == 5) && !c.triggered)) {
    return std::numeric_limits<uint64_t>::max();
  }
  const uint64_t n = c.initial;
  uint64_t tick;
  switch (c.mode) {
    case 2:
    case 3:
      tick = (c.edges_seen + 1) * n;
      break;
    case 0:
    case 1:
      if (c.edges_seen > 0) return std::numeric_limits<uint64_t>::max();
      tick = n;
      break;
    default:
      if (c.edges_seen > 0) return std::numeric_limits<uint64_t>::max();
      tick = n + 1;
      break;
  }
  return c.start_ns + TicksToNs(tick);
}

namespace {

// KVM's RW_STATE_* (arch/x86/kvm/i8254.c).
constexpr uint8_t kRwLsb = 1, kRwMsb = 2, kRwWord0 = 3, kRwWord1 = 4;
constexpr uint32_t kFlagHpetLegacy = 1, kFlagSpeakerDataOn = 2;

}  // namespace

accel::PitState Pit::SaveState(uint64_t now_ns) const {
  accel::PitState s;
  for (int i = 0; i < 3; ++i) {
    const Counter& c = counters_[i];
    accel::PitChannelState& k = s.channels[i];
    k.gate = c.gate;
    if (!c.loaded && !c.programmed) {
      // Never programmed: KVM's reset form (mode 0xff), which its restore leaves inert.
      k.mode = 0xff;
      k.count = 0x10000;
      continue;
    }
    k.count = c.loaded ? c.initial : 0;
    k.latched_count = c.latched_count;
    if (c.count_latched) k.count_latched = c.rw == 3 && c.latched_msb_next ? kRwMsb : c.rw;
    k.status_latched = c.status_latched;
    k.status = c.latched_status;
    k.read_state = c.rw == 3 ? (c.read_msb_next ? kRwWord1 : kRwWord0) : c.rw;
    k.write_state = c.rw == 3 ? (c.write_msb_next ? kRwWord1 : kRwWord0) : c.rw;
    k.write_latch = c.write_lsb;
    k.rw_mode = c.rw, k.mode = c.mode, k.bcd = c.bcd, k.gate = c.gate;
    // A count held by a low gate (modes 0/4) is saved as if it had run to now.
    const uint64_t start =
        !c.gate && (c.mode == 0 || c.mode == 4) ? now_ns - TicksToNs(c.frozen_ticks) : c.start_ns;
    k.count_load_time = static_cast<int64_t>(start);
  }
  s.flags = (irq_enabled_ ? 0 : kFlagHpetLegacy) | ((port_b_ & 2) ? kFlagSpeakerDataOn : 0);
  return s;
}

vireo::Status Pit::RestoreState(const accel::PitState& s, uint64_t saved_at_ns) {
  for (int i = 0; i < 3; ++i) {
    const accel::PitChannelState& k = s.channels[i];
    if (k.count > 0x10000) return Fail("the saved PIT counter {} has count {:#x}", i, k.count);
  }
  const uint64_t now = clock_.NowNs();
  for (int i = 0; i < 3; ++i) {
    const accel::PitChannelState& k = s.channels[i];
    Counter c;
    c.gate = k.gate != 0;
    if (k.mode > 5) {  // KVM's reset state (mode 0xff): never programmed
      counters_[i] = c;
      continue;
    }
    c.mode = k.mode;
    c.rw = k.rw_mode >= 1 && k.rw_mode <= 3 ? k.rw_mode : 3;
    c.bcd = k.bcd != 0;
    c.programmed = true;
    c.loaded = k.count != 0;
    c.initial = k.count != 0 ? k.count : 0x10000;
    c.triggered = c.loaded;
    c.null_count = !c.loaded;
    c.write_msb_next = c.rw == 3 && k.write_state == kRwWord1;
    c.write_lsb = k.write_latch;
    c.read_msb_next = c.rw == 3 && k.read_state == kRwWord1;
    c.count_latched = k.count_latched != 0;
    c.latched_count = k.latched_count;
    c.latched_msb_next = c.rw == 3 && k.count_latched == kRwMsb;
    c.status_latched = k.status_latched != 0;
    c.latched_status = k.status;
    // How long the count had run at the save: it resumes from there.
    const auto load = static_cast<uint64_t>(k.count_load_time);
    const uint64_t ran = saved_at_ns != 0 && load <= saved_at_ns ? saved_at_ns - load : 0;
    if (!c.gate && (c.mode == 0 || c.mode == 4)) c.frozen_ticks = NsToTicks(ran);
    c.start_ns = now - ran;
    counters_[i] = c;
    // Edges before the save were raised then (or are in the PIC's state).
    if (c.loaded) counters_[i].edges_seen = RisingEdges(c, Ticks(c));
  }
  irq_enabled_ = !(s.flags & kFlagHpetLegacy);
  port_b_ =
      static_cast<uint8_t>((counters_[2].gate ? 1 : 0) | ((s.flags & kFlagSpeakerDataOn) ? 2 : 0));
  return {};
}

}  // namespace vireo::irqchip
