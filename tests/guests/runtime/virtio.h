// A small virtio driver: device initialisation (virtio 1.2 section 3.1), split virtqueues (2.7)
// in static memory, and waiting for completions by polling the used ring or by interrupt
// (hlt-wait), over either transport (virtio_transport.h): virtio-mmio (interrupts through an
// IOAPIC-routed GSI) or virtio-pci (MSI-X).
//
// One request at a time is the intended use: Transfer() posts a chain, notifies and waits for
// that chain's used element. Completions for other heads (a late answer to an earlier request)
// are counted as strays and skipped. The raw descriptor access is for tests that send garbage.
#pragma once

#include <stdint.h>

#include "idt.h"
#include "virtio_mmio.h"
#include "virtio_transport.h"

namespace rt::virtio {

enum class WaitMode : uint8_t { kPoll, kInterrupt };

enum class Error : uint8_t {
  kOk,
  kNotModern,         // MagicValue / Version / VERSION_1 / virtio PCI capabilities missing
  kFeaturesRejected,  // FEATURES_OK did not stick
  kNoQueue,           // QueueNumMax is 0 or QueueReady was already set
  kQueueTooSmall,     // QueueNumMax below the size asked for
  kNoRoute,           // no IOAPIC owns the GSI, or no usable MSI-X
  kChainTooLong,
  kTimeout,
  kNeedsReset,   // the device set DEVICE_NEEDS_RESET
  kNoInterrupt,  // interrupt mode: the used element arrived, the interrupt did not
};
const char* ErrorName(Error e);

// 2.7.5 The Virtqueue Descriptor Table.
struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16);
inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;
// 2.7.6 / 2.7.8 ring flags.
inline constexpr uint16_t kAvailNoInterrupt = 1;

// One buffer of a chain: guest-physical address (= virtual: identity map), length, direction.
struct Buffer {
  uint64_t addr;
  uint32_t len;
  bool device_writes;
};

template <typename T>
Buffer In(T* p, uint32_t len) {  // the device writes it
  return {reinterpret_cast<uint64_t>(p), len, true};
}
template <typename T>
Buffer Out(const T* p, uint32_t len) {  // the device reads it
  return {reinterpret_cast<uint64_t>(p), len, false};
}

// Zero-initialised (static storage) is the unconfigured state; Device::Init sets it up.
class Queue {
 public:
  static constexpr uint16_t kMaxSize = 16;
  struct UsedElem {
    uint32_t id;
    uint32_t len;
  };
  // The three areas (2.7: descriptors 16-aligned, available ring 2-aligned, used ring 4-aligned)
  // plus two indirect tables. Sized for kMaxSize; a smaller size uses a prefix of each ring.
  struct alignas(16) Rings {
    Desc desc[kMaxSize];
    struct {
      uint16_t flags;
      uint16_t idx;
      uint16_t ring[kMaxSize + 1];  // ring[size] is used_event (EVENT_IDX)
    } avail;
    struct alignas(4) {
      uint16_t flags;
      uint16_t idx;
      UsedElem ring[kMaxSize];
      uint16_t avail_event_tail[2];  // avail_event sits right after ring[size]
    } used;
    alignas(16) Desc indirect[2][kMaxSize];
  };

  uint16_t size() const { return size_; }
  uint16_t last_used() const { return last_used_; }
  Rings& rings() { return rings_; }

  // Puts `n` buffers in the next free descriptors (round robin) as one chain, or as one
  // INDIRECT descriptor whose table holds them, and makes the chain available. Returns the
  // head, or -1 if the chain does not fit.
  int Post(const Buffer* bufs, int n, bool indirect);
  // Post without making the chain available: the caller may edit it, then PublishHead.
  int Prepare(const Buffer* bufs, int n, bool indirect);
  // Makes descriptor `head` available as it is (the caller filled it in through rings()).
  void PublishHead(uint16_t head);
  // Takes the next used element; false if the device has not returned any.
  bool PopUsed(UsedElem& out);
  // Whether the device wants a notification for what was published since `old_idx` (2.7.10).
  bool NeedsNotify(uint16_t old_idx) const;
  uint16_t avail_idx() const { return avail_idx_; }

 private:
  friend class Device;
  void Reset(uint16_t size, bool event_idx, bool want_interrupts);
  volatile uint16_t& AvailEvent() {
    uint64_t addr = reinterpret_cast<uint64_t>(&rings_.used) + 4 + sizeof(UsedElem) * size_;
    return *reinterpret_cast<volatile uint16_t*>(addr);
  }

  Rings rings_;
  uint16_t size_;
  uint16_t next_free_;
  uint16_t avail_idx_;
  uint16_t last_used_;
  uint8_t next_indirect_;
  bool event_idx_;
};

class Device {
 public:
  static constexpr int kMaxQueues = 2;

  // Zero is the default for every field (a static Device must need no constructor: the
  // runtime runs none).
  struct Options {
    uint64_t wanted_features;  // beyond VERSION_1; accepted only where offered
    int queues;                // 0: 1
    uint16_t queue_size;       // 0: Queue::kMaxSize or the device's maximum if smaller (QEMU's
                               // rng has 8); not checked to be a power of two
    WaitMode mode;             // kPoll (0) or kInterrupt
    uint32_t timeout_ms;       // per wait; 0: 2000
    // Called after the queues are ready and before DRIVER_OK (tests that misbehave there).
    void (*before_driver_ok)(Device&);
  };

  // Reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK, queue setup, DRIVER_OK (3.1.1).
  Error Init(const Location& where, const Options& options);
  Error Init(const MmioSlot& slot, const Options& options) {
    return Init(Location{TransportKind::kMmio, slot, {}}, options);
  }
  // Reset and Init again with the same device and options.
  Error Reinit();
  // Writes 0 to the device status and waits (bounded) until it reads back 0 (4.1.4.3.1,
  // 4.2.3.1).
  bool Reset();

  // Posts a chain on queue `q`, notifies, and waits for its used element.
  Error Transfer(int q, const Buffer* bufs, int n, uint32_t* used_len = nullptr,
                 bool indirect = false);
  // Waits for the used element of `head` on queue `q`; `timeout_ms` 0 means the default. In
  // interrupt mode it also waits for an interrupt after the last Notify, as a driver that sleeps
  // until the interrupt would.
  Error Wait(int q, int head, uint32_t* used_len, uint32_t timeout_ms = 0);
  // Notifies the device (QueueNotify, or the PCI notification address) for queue `q`, subject to
  // EVENT_IDX suppression unless `force`.
  void Notify(int q, uint16_t old_avail_idx, bool force = false);

  // 2.5.1: device configuration read with 8/16/32-bit accesses, 64-bit as two 32-bit reads,
  // retried until the configuration generation is stable.
  uint8_t Config8(uint32_t off) const;
  uint16_t Config16(uint32_t off) const;
  uint32_t Config32(uint32_t off) const;
  uint64_t Config64(uint32_t off) const;

  uint32_t device_id() const { return device_id_; }
  uint64_t offered_features() const { return offered_; }
  uint64_t features() const { return features_; }
  bool Has(uint64_t feature) const { return (features_ & feature) != 0; }
  uint32_t Status() const { return transport_.Status(); }
  const Transport& transport() const { return transport_; }
  Queue& queue(int q) { return queues_[q]; }
  const Options& options() const { return options_; }
  Options& mutable_options() { return options_; }
  uint32_t interrupts() const { return interrupts_; }
  uint32_t config_interrupts() const { return config_interrupts_; }
  uint32_t stray_completions() const { return strays_; }
  // Prints where queue q's rings stand: after a failed wait it tells a request the device never
  // took (used idx = last used) from one whose used element the driver missed.
  void PrintQueue(int q);

 private:
  static void OnInterrupt(InterruptFrame& frame);
  Error SetUpQueue(int q);
  Error RouteInterrupt();
  template <typename T, typename F>
  T ReadConfigStable(F read) const;

  Transport transport_;
  Options options_;
  uint32_t device_id_;
  uint64_t offered_;
  uint64_t features_;
  uint8_t vector_;  // 0: no interrupt vectors yet (queue vector; config = vector_ + 0x10)
  volatile uint32_t interrupts_;
  volatile uint32_t config_interrupts_;
  uint32_t strays_;
  uint32_t interrupts_at_notify_;
  Queue queues_[kMaxQueues];
};
// Guests keep devices in static storage, and the runtime runs no constructors: all-zero must be
// a valid (uninitialised) device.
static_assert(__is_trivially_constructible(Device));

}  // namespace rt::virtio
