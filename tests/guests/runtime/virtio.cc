// Split virtqueues (virtio 1.2 section 2.7) and the transport-independent driver side of
// device initialisation (3.1.1).
#include "virtio.h"

#include "apic.h"
#include "serial.h"
#include "tsc.h"

namespace rt::virtio {

namespace {

// Interrupt vectors: one per interrupt-mode device (virtio-pci adds one for configuration
// changes, 0x10 above it), and a LAPIC-timer watchdog that keeps hlt waking so a wait's deadline
// is checked even if the device never interrupts.
constexpr uint8_t kFirstVector = 0x40;
constexpr uint8_t kConfigVectorOffset = 0x10;
constexpr int kMaxInterruptDevices = 8;
constexpr uint8_t kWatchdogVector = 0x4f;
constexpr uint32_t kWatchdogTicks = 625000;  // 10 ms at divide-by-16 of a 1 GHz APIC bus

Device* vector_owner[kMaxInterruptDevices];

void OnWatchdog(InterruptFrame&) {}

template <typename T>
volatile T& V(T& x) {
  return const_cast<volatile T&>(x);
}

}  // namespace

const char* ErrorName(Error e) {
  switch (e) {
    case Error::kOk:
      return "ok";
    case Error::kNotModern:
      return "not a modern virtio device";
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
  transport_.SetStatus(0);
  for (int i = 0; i < 1000; ++i) {
    if (transport_.Status() == 0) return true;
    Pause();
  }
  return false;
}

Error Device::Init(const Location& where, const Options& options) {
  options_ = options;
  if (options_.queues <= 0) options_.queues = 1;
  if (options_.queues > kMaxQueues) options_.queues = kMaxQueues;
  if (options_.queue_size > Queue::kMaxSize) options_.queue_size = Queue::kMaxSize;
  if (options_.timeout_ms == 0) options_.timeout_ms = 2000;
  if (!transport_.Open(where)) return Error::kNotModern;
  device_id_ = transport_.DeviceType();
  Reset();
  uint32_t status = kStatusAcknowledge;
  transport_.SetStatus(status);
  status |= kStatusDriver;
  transport_.SetStatus(status);

  offered_ = transport_.DeviceFeatures();
  if (!(offered_ & kFeatureVersion1)) {
    transport_.SetStatus(status | kStatusFailed);
    return Error::kNotModern;
  }
  features_ = offered_ & (kFeatureVersion1 | options_.wanted_features);
  transport_.SetDriverFeatures(features_);
  status |= kStatusFeaturesOk;
  transport_.SetStatus(status);
  if (!(transport_.Status() & kStatusFeaturesOk)) {
    transport_.SetStatus(status | kStatusFailed);
    return Error::kFeaturesRejected;
  }

  if (options_.mode == WaitMode::kInterrupt) {
    Error e = RouteInterrupt();
    if (e != Error::kOk) {
      transport_.SetStatus(status | kStatusFailed);
      return e;
    }
  }
  for (int q = 0; q < options_.queues; ++q) {
    Error e = SetUpQueue(q);
    if (e != Error::kOk) {
      transport_.SetStatus(status | kStatusFailed);
      return e;
    }
  }
  if (options_.before_driver_ok) options_.before_driver_ok(*this);
  transport_.SetStatus(status | kStatusDriverOk);
  return Error::kOk;
}

Error Device::Reinit() {
  Location where = transport_.location();
  Options options = options_;
  return Init(where, options);
}

Error Device::SetUpQueue(int q) {
  // 4.1.5.1.3 / 4.2.3.2 Virtqueue Configuration.
  if (transport_.QueueEnabled(q)) return Error::kNoQueue;
  uint32_t max = transport_.QueueMax(q);
  if (max == 0) return Error::kNoQueue;
  uint16_t size = options_.queue_size;
  if (size == 0) size = max < Queue::kMaxSize ? static_cast<uint16_t>(max) : Queue::kMaxSize;
  if (max < size) return Error::kQueueTooSmall;
  Queue& queue = queues_[q];
  queue.Reset(size, Has(kFeatureEventIdx), options_.mode == WaitMode::kInterrupt);
  if (!transport_.SetUpQueue(q, size, reinterpret_cast<uint64_t>(&queue.rings_.desc),
                             reinterpret_cast<uint64_t>(&queue.rings_.avail),
                             reinterpret_cast<uint64_t>(&queue.rings_.used))) {
    return Error::kNoRoute;
  }
  return Error::kOk;
}

Error Device::RouteInterrupt() {
  int i = 0;
  while (i < kMaxInterruptDevices && vector_owner[i] && vector_owner[i] != this) ++i;
  if (i == kMaxInterruptDevices) return Error::kNoRoute;
  bool first = vector_ == 0;
  vector_owner[i] = this;
  vector_ = static_cast<uint8_t>(kFirstVector + i);
  if (first) {
    SetInterruptHandler(vector_, OnInterrupt);
    SetInterruptHandler(static_cast<uint8_t>(vector_ + kConfigVectorOffset), OnInterrupt);
    SetInterruptHandler(kWatchdogVector, OnWatchdog);
    LapicEnable();
  }
  // Every Init: a reset forgets virtio-pci's MSI-X vectors (an IOAPIC route would survive, but
  // routing again is harmless).
  if (first || transport_.kind() == TransportKind::kPci) {
    if (!transport_.EnableInterrupts(vector_,
                                     static_cast<uint8_t>(vector_ + kConfigVectorOffset))) {
      vector_owner[i] = nullptr;
      vector_ = 0;
      return Error::kNoRoute;
    }
  }
  return Error::kOk;
}

void Device::OnInterrupt(InterruptFrame& frame) {
  int v = static_cast<int>(frame.vector) - kFirstVector;
  bool config = v >= kConfigVectorOffset;
  int i = config ? v - kConfigVectorOffset : v;
  if (i < 0 || i >= kMaxInterruptDevices || !vector_owner[i]) return;
  Device& d = *vector_owner[i];
  uint32_t causes = d.transport_.TakeInterruptCauses(config);
  d.interrupts_ = d.interrupts_ + 1;
  if (causes & kInterruptConfigChange) d.config_interrupts_ = d.config_interrupts_ + 1;
}

void Device::Notify(int q, uint16_t old_avail_idx, bool force) {
  Barrier();
  interrupts_at_notify_ = interrupts_;
  if (force || queues_[q].NeedsNotify(old_avail_idx)) {
    transport_.Notify(q);
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

void Device::PrintQueue(int q) {
  Queue& queue = queues_[q];
  Printf(
      "virtio: device %u queue %d: avail idx %u, used idx %u (memory), last used %u, "
      "%u strays, used flags %#x\n",
      device_id_, q, queue.avail_idx(), V(queue.rings_.used.idx), queue.last_used(), strays_,
      V(queue.rings_.used.flags));
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

// 2.5.1 / 4.1.3.1 / 4.2.2.2: read, and read again if the generation moved meanwhile.
template <typename T, typename F>
T Device::ReadConfigStable(F read) const {
  uint32_t gen;
  T v;
  int tries = 0;
  do {
    gen = transport_.ConfigGeneration();
    v = read();
  } while (transport_.ConfigGeneration() != gen && ++tries < 8);
  return v;
}

uint8_t Device::Config8(uint32_t off) const {
  return ReadConfigStable<uint8_t>([&] { return transport_.Config8(off); });
}

uint16_t Device::Config16(uint32_t off) const {
  return ReadConfigStable<uint16_t>([&] { return transport_.Config16(off); });
}

uint32_t Device::Config32(uint32_t off) const {
  return ReadConfigStable<uint32_t>([&] { return transport_.Config32(off); });
}

uint64_t Device::Config64(uint32_t off) const {
  return ReadConfigStable<uint64_t>(
      [&] { return transport_.Config32(off) | uint64_t{transport_.Config32(off + 4)} << 32; });
}

}  // namespace rt::virtio
