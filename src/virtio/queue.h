// Split virtqueue, device side (virtio 1.2, 2.7 "Split Virtqueues").
//
// A Queue is configured by the transport through setters and becomes active only through
// Activate(), which validates the size and every ring's alignment and extent (2.7, table in
// 2.7 "Virtqueue Part / Alignment / Size"), so an invalid active queue cannot exist.
// Devices then Pop() descriptor chains, complete them with AddUsed() and ask
// NeedsNotification() whether the driver wants an interrupt (2.7.7, 2.7.10).
//
// Every guest access goes through GuestMemory's checked accessors. Everything the guest
// controls is bounded: a chain visits at most size() descriptors of the descriptor table
// plus kMaxIndirectEntries of one indirect table, so a looping chain ends. A bad chain is
// data (PopResult::kBadChain, counted); a garbage avail ring is kBroken (sticky until
// Reset), after which the device sets DEVICE_NEEDS_RESET (2.1.2).
//
// Pop, AddUsed and NeedsNotification neither allocate (once the chain's storage has grown
// to the longest chain seen) nor throw. Not thread-safe: the owner serialises calls.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::virtio {

// Descriptor flags (2.7.5).
inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;
// Ring flags (2.7.6, 2.7.8).
inline constexpr uint16_t kAvailFNoInterrupt = 1;
inline constexpr uint16_t kUsedFNoNotify = 1;

// Largest split queue (2.7: "Queue Size ... maximum Queue Size value is 32768").
inline constexpr uint16_t kMaxQueueSize = 32768;
// The spec lets an indirect table hold up to 2^32/16 entries (2.7.5.3); Vireo bounds it.
inline constexpr uint32_t kMaxIndirectEntries = 1024;

// struct virtq_desc (2.7.5).
struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

// struct virtq_used_elem (2.7.8).
struct UsedElement {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElement) == 8);

// One guest buffer of a chain. It lies wholly inside one RAM region (checked by Pop).
struct ChainBuffer {
  GuestAddress addr = 0;
  uint32_t len = 0;
  bool writable = false;
};

// A validated descriptor chain: device-readable buffers first, then device-writable ones
// (2.7.4.2), total length at most 2^32-1. Zero-length descriptors are accepted and skipped.
// Pop() refills it in place; its storage is kept, so a warm chain does not allocate.
class DescriptorChain {
 public:
  DescriptorChain() = default;
  explicit DescriptorChain(size_t reserve) { buffers_.reserve(reserve); }

  uint16_t head() const { return head_; }
  std::span<const ChainBuffer> buffers() const { return buffers_; }
  std::span<const ChainBuffer> readable() const {
    return std::span(buffers_).first(readable_count_);
  }
  std::span<const ChainBuffer> writable() const {
    return std::span(buffers_).subspan(readable_count_);
  }
  uint32_t readable_len() const { return readable_len_; }
  uint32_t writable_len() const { return writable_len_; }
  // Descriptors visited, including zero-length and indirect ones.
  uint32_t descriptor_count() const { return descriptor_count_; }

 private:
  friend class Queue;
  void Clear(uint16_t head);

  std::vector<ChainBuffer> buffers_;
  uint16_t head_ = 0;
  size_t readable_count_ = 0;
  uint32_t readable_len_ = 0;
  uint32_t writable_len_ = 0;
  uint32_t descriptor_count_ = 0;
};

enum class PopResult {
  kChain,     // `out` holds a valid chain
  kEmpty,     // nothing available (or the queue is not active)
  kBadChain,  // the chain at out.head() is invalid: complete it with AddUsed(head, 0)
  kBroken,    // the avail ring itself is garbage; sticky until Reset (set NEEDS_RESET)
};

// The queue as plain data, for snapshots. Restore() validates it like a driver's setup.
struct QueueState {
  uint16_t size = 0;
  GuestAddress desc_table = 0;
  GuestAddress avail_ring = 0;
  GuestAddress used_ring = 0;
  bool ready = false;
  uint16_t next_avail = 0;
  uint16_t next_used = 0;
  uint16_t signalled_used = 0;
  bool event_idx = false;
  bool indirect_desc = false;

  bool operator==(const QueueState&) const = default;
};

struct QueueCounters {
  uint64_t chains = 0;               // valid chains popped
  uint64_t bad_chains = 0;           // kBadChain results
  uint64_t broken = 0;               // times the avail ring was found garbage
  uint64_t invalid_activations = 0;  // Activate() refusals
  uint64_t bad_used = 0;             // AddUsed refusals (head out of range, inactive)
};

class Queue {
 public:
  // `max_size`: a power of two in [1, kMaxQueueSize] (a VMM invariant; aborts otherwise).
  explicit Queue(uint16_t max_size);

  // ---- Transport side (ignored while ready(); see Activate). ----
  void set_size(uint16_t size);
  void set_desc_table(GuestAddress addr);
  void set_avail_ring(GuestAddress addr);  // the "driver area" (2.6)
  void set_used_ring(GuestAddress addr);   // the "device area" (2.6)
  // Negotiated VIRTIO_F_EVENT_IDX (2.7.7.2, 2.7.10) and VIRTIO_F_INDIRECT_DESC (2.7.5.3).
  void set_event_idx(bool enabled) { event_idx_ = enabled; }
  void set_indirect_desc(bool enabled) { indirect_desc_ = enabled; }
  // Validates size and rings and makes the queue ready; on error nothing changes.
  Status Activate(const GuestMemory& memory);
  void Deactivate() { ready_ = false; }
  // Back to the reset state: not ready, size = max_size, addresses 0, indices 0.
  void Reset();

  uint16_t max_size() const { return max_size_; }
  uint16_t size() const { return size_; }
  bool ready() const { return ready_; }
  bool broken() const { return broken_; }
  bool event_idx() const { return event_idx_; }
  GuestAddress desc_table() const { return desc_table_; }
  GuestAddress avail_ring() const { return avail_ring_; }
  GuestAddress used_ring() const { return used_ring_; }
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }
  const QueueCounters& counters() const { return counters_; }

  // ---- Device side. ----
  // Takes the next available chain into `out`. With EVENT_IDX, also publishes avail_event
  // = next_avail (2.7.10), re-checking the ring once when it looks empty.
  PopResult Pop(const GuestMemory& memory, DescriptorChain& out);
  // Puts (head, len) on the used ring and publishes used idx (2.7.8). False (nothing
  // written) when the queue is inactive or head is not a descriptor index.
  bool AddUsed(const GuestMemory& memory, uint16_t head, uint32_t len);
  // Whether the driver wants a used-buffer notification for what was added since the last
  // call: used_event with EVENT_IDX (2.7.10), else !VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7).
  bool NeedsNotification(const GuestMemory& memory);

  // ---- Snapshot. ----
  QueueState state() const;
  // Applies `state` through the setters and Activate(); on error the queue is Reset().
  Status Restore(const GuestMemory& memory, const QueueState& state);

 private:
  enum class Walk { kOk, kBad };
  Walk WalkChain(const GuestMemory& memory, uint16_t head, DescriptorChain& out) const;
  static Walk AddBuffer(const GuestMemory& memory, const Descriptor& desc, DescriptorChain& out);
  bool ReadAvailIdx(const GuestMemory& memory, uint16_t& idx) const;
  void WriteAvailEvent(const GuestMemory& memory) const;
  PopResult MarkBroken();

  // Ring extents (2.7: alignment 16/2/4; sizes 16*n, 6+2*n, 6+8*n).
  GuestAddress avail_idx_addr() const { return avail_ring_ + 2; }
  GuestAddress avail_slot_addr(uint16_t slot) const { return avail_ring_ + 4 + 2ull * slot; }
  GuestAddress used_event_addr() const { return avail_ring_ + 4 + 2ull * size_; }
  GuestAddress used_idx_addr() const { return used_ring_ + 2; }
  GuestAddress used_slot_addr(uint16_t slot) const { return used_ring_ + 4 + 8ull * slot; }
  GuestAddress avail_event_addr() const { return used_ring_ + 4 + 8ull * size_; }

  const uint16_t max_size_;
  uint16_t size_;
  GuestAddress desc_table_ = 0;
  GuestAddress avail_ring_ = 0;
  GuestAddress used_ring_ = 0;
  bool ready_ = false;
  bool broken_ = false;
  bool event_idx_ = false;
  bool indirect_desc_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;  // next_used_ at the last NeedsNotification()
  QueueCounters counters_;
};

}  // namespace vireo::virtio
