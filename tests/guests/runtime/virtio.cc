// Split virtqueues (virtio 1.2 section 2.7) and the virtio-mmio driver side of device
// initialisation (3.1.1, 4.2.3).
#include "virtio.h"

#include "acpi.h"
#include "apic.h"
#include "ioapic.h"
#include "serial.h"
#include "tsc.h"

namespace rt::virtio {

namespace {

// Interrupt vectors: one per interrupt-mode device, and a LAPIC-timer watchdog that keeps hlt
// waking so a wait's deadline is checked even if the device never interrupts.
constexpr uint8_t kFirstVector = 0x40;
constexpr int kMaxInterruptDevices = 8;
constexpr uint8_t kWatchdogVector = 0x4f;
constexpr uint32_t kWatchdogTicks = 625000;  // 10 ms at divide-by-16 of a 1 GHz APIC bus

Device* vector_owner[kMaxInterruptDevices];

void OnWatchdog(InterruptFrame&) {}

template <typename T>
volatile T& V(T& x) {
  return const_cast<volatile T&>(x);
}

// Routes `gsi` (edge, active high) to `vector` on this CPU through whichever IOAPIC the MADT
// says owns it; with no MADT (QEMU microvm, acpi=off), the IOAPIC at its default address.
bool RouteGsi(uint32_t gsi, uint8_t vector) {
  const Madt& madt = GetMadt();
  uint64_t base = 0;
  uint32_t gsi_base = 0;
  for (int i = 0; i < madt.ioapic_count; ++i) {
    const auto& io = madt.ioapics[i];
    if (gsi >= io.gsi_base && gsi < io.gsi_base + static_cast<uint32_t>(IoapicPins(io.addr))) {
      base = io.addr;
      gsi_base = io.gsi_base;
    }
  }
  if (!base && madt.ioapic_count == 0 &&
      gsi < static_cast<uint32_t>(IoapicPins(kIoapicDefaultBase))) {
    base = kIoapicDefaultBase;
  }
  if (!base) {
    Printf("virtio: no IOAPIC for GSI %u\n", gsi);
    return false;
  }
  int pin = static_cast<int>(gsi - gsi_base);
  IoapicSetRedirection(base, pin, {vector, static_cast<uint8_t>(LapicId()), false, false, false});
  Printf("virtio: GSI %u -> ioapic %#lx pin %d (edge, high) -> vector %#x\n", gsi, base, pin,
         vector);
  return true;
}

}  // namespace

const char* ErrorName(Error e) {
  switch (e) {
    case Error::kOk:
      return "ok";
    case Error::kNotModern:
      return "not a modern virtio-mmio device";
    case Error::kFeaturesRejected:
      return "FEATURES_OK not accepted";
    case Error::kNoQueue:
      return "queue unavailable";
    case Error::kQueueTooSmall:
      return "queue too small";
    case Error::kNoRoute:
      return "no interrupt route";
    case Error::kChainTooLong:
      return "chain too long";
    case Error::kTimeout:
      return "timeout";
    case Error::kNeedsReset:
      return "device needs reset";
    case Error::kNoInterrupt:
      return "used buffer but no interrupt";
  }
  return "?";
}

// ---- Queue ----

void Queue::Reset(uint16_t size, bool event_idx, bool want_interrupts) {
  auto* words = reinterpret_cast<volatile uint64_t*>(&rings_);
  for (uint64_t i = 0; i < sizeof(rings_) / 8; ++i) words[i] = 0;
  size_ = size;
  next_free_ = 0;
  avail_idx_ = 0;
  last_used_ = 0;
  next_indirect_ = 0;
  event_idx_ = event_idx;
  // 2.7.7: without EVENT_IDX the flag asks for no interrupts; with it, used_event (= 0 here)
  // asks for one when the first used element arrives.
  V(rings_.avail.flags) = want_interrupts || event_idx ? 0 : kAvailNoInterrupt;
}

int Queue::Post(const Buffer* bufs, int n, bool indirect) {
  int head = Prepare(bufs, n, indirect);
  if (head >= 0) PublishHead(static_cast<uint16_t>(head));
  return head;
}

int Queue::Prepare(const Buffer* bufs, int n, bool indirect) {
  if (n <= 0 || size_ == 0) return -1;
  uint16_t head = next_free_;
  if (indirect) {
    if (n > kMaxSize) return -1;
    Desc* table = rings_.indirect[next_indirect_];
    next_indirect_ ^= 1;
    for (int i = 0; i < n; ++i) {
      table[i] = {bufs[i].addr, bufs[i].len,
                  static_cast<uint16_t>((bufs[i].device_writes ? kDescWrite : 0) |
                                        (i + 1 < n ? kDescNext : 0)),
                  static_cast<uint16_t>(i + 1 < n ? i + 1 : 0)};
    }
    rings_.desc[head] = {reinterpret_cast<uint64_t>(table), static_cast<uint32_t>(n * sizeof(Desc)),
                         kDescIndirect, 0};
    next_free_ = static_cast<uint16_t>((head + 1) % size_);
  } else {
    if (n > size_) return -1;
    for (int i = 0; i < n; ++i) {
      uint16_t d = static_cast<uint16_t>((head + i) % size_);
      uint16_t next = static_cast<uint16_t>((d + 1) % size_);
      rings_.desc[d] = {bufs[i].addr, bufs[i].len,
                        static_cast<uint16_t>((bufs[i].device_writes ? kDescWrite : 0) |
                                              (i + 1 < n ? kDescNext : 0)),
                        static_cast<uint16_t>(i + 1 < n ? next : 0)};
    }
    next_free_ = static_cast<uint16_t>((head + n) % size_);
  }
  return head;
}

void Queue::PublishHead(uint16_t head) {
  // 2.7.13: the descriptors and the ring entry must be visible before the index moves. x86
  // keeps stores in order; the compiler must too.
  V(rings_.avail.ring[avail_idx_ % size_]) = head;
  Barrier();
  ++avail_idx_;
  V(rings_.avail.idx) = avail_idx_;
  Barrier();
}

bool Queue::PopUsed(UsedElem& out) {
  if (size_ == 0 || V(rings_.used.idx) == last_used_) return false;
  Barrier();
  const volatile UsedElem& e = rings_.used.ring[last_used_ % size_];
  out.id = e.id;
  out.len = e.len;
  ++last_used_;
  // 2.7.10: with EVENT_IDX, ask for an interrupt when the next element arrives.
  if (event_idx_) V(rings_.avail.ring[size_]) = last_used_;
  return true;
}

bool Queue::NeedsNotify(uint16_t old_idx) const {
  asm volatile("mfence" ::: "memory");  // the index store before the avail_event / flags load
  if (!event_idx_) return (V(const_cast<Rings&>(rings_).used.flags) & 1) == 0;  // NO_NOTIFY
  uint16_t event = const_cast<Queue*>(this)->AvailEvent();
  return static_cast<uint16_t>(avail_idx_ - event - 1) <
         static_cast<uint16_t>(avail_idx_ - old_idx);
}

// ---- Device ----

bool Device::Reset() {
  regs_.Write(kStatus, 0);
  for (int i = 0; i < 1000; ++i) {
    if (regs_.Read(kStatus) == 0) return true;
    Pause();
  }
  return false;
}

Error Device::Init(const MmioSlot& slot, const Options& options) {
  slot_ = slot;
  options_ = options;
  if (options_.queues <= 0) options_.queues = 1;
  if (options_.queues > kMaxQueues) options_.queues = kMaxQueues;
  if (options_.queue_size == 0 || options_.queue_size > Queue::kMaxSize) {
    options_.queue_size = Queue::kMaxSize;
  }
  if (options_.timeout_ms == 0) options_.timeout_ms = 2000;
  regs_ = MmioRegs(slot.base);
  if (regs_.Read(kMagicValue) != kMagic || regs_.Read(kVersion) != kModernVersion) {
    return Error::kNotModern;
  }
  device_id_ = regs_.Read(kDeviceId);
  Reset();
  uint32_t status = kStatusAcknowledge;
  regs_.Write(kStatus, status);
  status |= kStatusDriver;
  regs_.Write(kStatus, status);

  regs_.Write(kDeviceFeaturesSel, 0);
  offered_ = regs_.Read(kDeviceFeatures);
  regs_.Write(kDeviceFeaturesSel, 1);
  offered_ |= uint64_t{regs_.Read(kDeviceFeatures)} << 32;
  if (!(offered_ & kFeatureVersion1)) {
    regs_.Write(kStatus, status | kStatusFailed);
    return Error::kNotModern;
  }
  features_ = offered_ & (kFeatureVersion1 | options_.wanted_features);
  regs_.Write(kDriverFeaturesSel, 0);
  regs_.Write(kDriverFeatures, static_cast<uint32_t>(features_));
  regs_.Write(kDriverFeaturesSel, 1);
  regs_.Write(kDriverFeatures, static_cast<uint32_t>(features_ >> 32));
  status |= kStatusFeaturesOk;
  regs_.Write(kStatus, status);
  if (!(regs_.Read(kStatus) & kStatusFeaturesOk)) {
    regs_.Write(kStatus, status | kStatusFailed);
    return Error::kFeaturesRejected;
  }

  if (options_.mode == WaitMode::kInterrupt) {
    Error e = RouteInterrupt();
    if (e != Error::kOk) {
      regs_.Write(kStatus, status | kStatusFailed);
      return e;
    }
  }
  for (int q = 0; q < options_.queues; ++q) {
    Error e = SetUpQueue(q);
    if (e != Error::kOk) {
      regs_.Write(kStatus, status | kStatusFailed);
      return e;
    }
  }
  if (options_.before_driver_ok) options_.before_driver_ok(*this);
  regs_.Write(kStatus, status | kStatusDriverOk);
  return Error::kOk;
}

Error Device::Reinit() {
  MmioSlot slot = slot_;
  Options options = options_;
  return Init(slot, options);
}

Error Device::SetUpQueue(int q) {
  // 4.2.3.2 Virtqueue Configuration.
  regs_.Write(kQueueSel, static_cast<uint32_t>(q));
  if (regs_.Read(kQueueReady) != 0) return Error::kNoQueue;
  uint32_t max = regs_.Read(kQueueNumMax);
  if (max == 0) return Error::kNoQueue;
  if (max < options_.queue_size) return Error::kQueueTooSmall;
  Queue& queue = queues_[q];
  queue.Reset(options_.queue_size, Has(kFeatureEventIdx), options_.mode == WaitMode::kInterrupt);
  regs_.Write(kQueueNum, options_.queue_size);
  regs_.WriteAddress(kQueueDescLow, reinterpret_cast<uint64_t>(&queue.rings_.desc));
  regs_.WriteAddress(kQueueDriverLow, reinterpret_cast<uint64_t>(&queue.rings_.avail));
  regs_.WriteAddress(kQueueDeviceLow, reinterpret_cast<uint64_t>(&queue.rings_.used));
  regs_.Write(kQueueReady, 1);
  return Error::kOk;
}

Error Device::RouteInterrupt() {
  if (vector_ == 0) {
    int i = 0;
    while (i < kMaxInterruptDevices && vector_owner[i] && vector_owner[i] != this) ++i;
    if (i == kMaxInterruptDevices) return Error::kNoRoute;
    vector_owner[i] = this;
    vector_ = static_cast<uint8_t>(kFirstVector + i);
    SetInterruptHandler(vector_, OnInterrupt);
    SetInterruptHandler(kWatchdogVector, OnWatchdog);
    LapicEnable();
    if (!RouteGsi(slot_.gsi, vector_)) {
      vector_owner[i] = nullptr;
      vector_ = 0;
      return Error::kNoRoute;
    }
  }
  return Error::kOk;
}

void Device::OnInterrupt(InterruptFrame& frame) {
  int i = static_cast<int>(frame.vector) - kFirstVector;
  if (i < 0 || i >= kMaxInterruptDevices || !vector_owner[i]) return;
  Device& d = *vector_owner[i];
  // 4.2.2: acknowledge exactly the causes we saw.
  uint32_t isr = d.regs_.Read(kInterruptStatus);
  if (isr) d.regs_.Write(kInterruptAck, isr);
  d.interrupts_ = d.interrupts_ + 1;
  if (isr & kInterruptConfigChange) d.config_interrupts_ = d.config_interrupts_ + 1;
}

void Device::Notify(int q, uint16_t old_avail_idx, bool force) {
  Barrier();
  interrupts_at_notify_ = interrupts_;
  if (force || queues_[q].NeedsNotify(old_avail_idx)) {
    regs_.Write(kQueueNotify, static_cast<uint32_t>(q));
  }
}

Error Device::Transfer(int q, const Buffer* bufs, int n, uint32_t* used_len, bool indirect) {
  Queue& queue = queues_[q];
  uint16_t old = queue.avail_idx();
  int head = queue.Post(bufs, n, indirect && Has(kFeatureIndirectDesc));
  if (head < 0) return Error::kChainTooLong;
  Notify(q, old);
  return Wait(q, head, used_len);
}

Error Device::Wait(int q, int head, uint32_t* used_len, uint32_t timeout_ms) {
  Queue& queue = queues_[q];
  bool interrupt = options_.mode == WaitMode::kInterrupt;
  Deadline deadline = Deadline::InMs(timeout_ms ? timeout_ms : options_.timeout_ms);
  if (interrupt) LapicTimerStart(kWatchdogVector, kWatchdogTicks, true);
  Error result = Error::kTimeout;
  bool found = false;
  for (uint32_t spin = 0;; ++spin) {
    if (interrupt) Cli();
    Queue::UsedElem e;
    while (!found && queue.PopUsed(e)) {
      if (static_cast<int>(e.id) == head) {
        found = true;
        if (used_len) *used_len = e.len;
      } else {
        ++strays_;
      }
    }
    if (found && (!interrupt || interrupts_ != interrupts_at_notify_)) {
      result = Error::kOk;
      break;
    }
    // Polling reads Status only now and then: each read is an exit.
    if ((interrupt || spin % 256 == 0) && (Status() & kStatusNeedsReset)) {
      result = Error::kNeedsReset;
      break;
    }
    if (deadline.Expired()) {
      if (found) result = Error::kNoInterrupt;
      break;
    }
    if (interrupt) {
      StiHlt();
    } else {
      Pause();
    }
  }
  if (interrupt) {
    LapicTimerStop();
    Cli();
  }
  return result;
}

uint8_t Device::Config8(uint32_t off) const {
  uint32_t gen;
  uint8_t v;
  int tries = 0;
  do {
    gen = regs_.Read(kConfigGeneration);
    v = MmioRead<uint8_t>(regs_.base() + kConfig + off);
  } while (regs_.Read(kConfigGeneration) != gen && ++tries < 8);
  return v;
}

uint16_t Device::Config16(uint32_t off) const {
  uint32_t gen;
  uint16_t v;
  int tries = 0;
  do {
    gen = regs_.Read(kConfigGeneration);
    v = MmioRead<uint16_t>(regs_.base() + kConfig + off);
  } while (regs_.Read(kConfigGeneration) != gen && ++tries < 8);
  return v;
}

uint32_t Device::Config32(uint32_t off) const {
  uint32_t gen;
  uint32_t v;
  int tries = 0;
  do {
    gen = regs_.Read(kConfigGeneration);
    v = regs_.Read(kConfig + off);
  } while (regs_.Read(kConfigGeneration) != gen && ++tries < 8);
  return v;
}

uint64_t Device::Config64(uint32_t off) const {
  uint32_t gen;
  uint64_t v;
  int tries = 0;
  do {
    gen = regs_.Read(kConfigGeneration);
    v = regs_.Read(kConfig + off) | uint64_t{regs_.Read(kConfig + off + 4)} << 32;
  } while (regs_.Read(kConfigGeneration) != gen && ++tries < 8);
  return v;
}

}  // namespace rt::virtio
