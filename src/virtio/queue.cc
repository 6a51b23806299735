#include "virtio/queue.h"

#include <atomic>
#include <cstdlib>

#include "base/log.h"

namespace vireo::virtio {
namespace {

constexpr uint64_t kMaxChainLen = 0xffffffffull;  // lengths are u32 on the used ring

// Ring sizes and alignments (2.7, "Virtqueue Part / Alignment / Size").
constexpr uint64_t kDescAlign = 16;
constexpr uint64_t kAvailAlign = 2;
constexpr uint64_t kUsedAlign = 4;
constexpr uint64_t DescTableSize(uint16_t n) { return 16ull * n; }
constexpr uint64_t AvailRingSize(uint16_t n) { return 6 + 2ull * n; }  // with used_event
constexpr uint64_t UsedRingSize(uint16_t n) { return 6 + 8ull * n; }   // with avail_event

constexpr bool IsPowerOfTwo(uint32_t n) { return n != 0 && (n & (n - 1)) == 0; }

// vring_need_event (2.7.10): does moving used idx from `old_idx` to `new_idx` cross
// `event_idx`? All arithmetic wraps at 16 bits.
constexpr bool NeedEvent(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

}  // namespace

void DescriptorChain::Clear(uint16_t head) {
  buffers_.clear();  // keeps capacity
  head_ = head;
  readable_count_ = 0;
  readable_len_ = 0;
  writable_len_ = 0;
  descriptor_count_ = 0;
}

Queue::Queue(uint16_t max_size) : max_size_(max_size), size_(max_size) {
  if (!IsPowerOfTwo(max_size) || max_size > kMaxQueueSize) {
    Log(LogLevel::kError, "virtio queue: invalid max size {}", max_size);
    std::abort();  // a VMM bug, not a guest mistake
  }
}

void Queue::set_size(uint16_t size) {
  if (!ready_) size_ = size;
}
void Queue::set_desc_table(GuestAddress addr) {
  if (!ready_) desc_table_ = addr;
}
void Queue::set_avail_ring(GuestAddress addr) {
  if (!ready_) avail_ring_ = addr;
}
void Queue::set_used_ring(GuestAddress addr) {
  if (!ready_) used_ring_ = addr;
}

Status Queue::Activate(const GuestMemory& memory) {
  auto refuse = [this]<typename... Args>(fmt::format_string<Args...> format, Args&&... args) {
    counters_.invalid_activations++;
    return Fail(format, std::forward<Args>(args)...);
  };
  if (ready_) return {};
  // 2.7: "Queue Size value is always a power of 2"; 4.2.2.3: at most QueueNumMax.
  if (!IsPowerOfTwo(size_) || size_ > max_size_) {
    return refuse("queue size {} is not a power of two in 1..{}", size_, max_size_);
  }
  if (desc_table_ % kDescAlign != 0 || avail_ring_ % kAvailAlign != 0 ||
      used_ring_ % kUsedAlign != 0) {
    return refuse("misaligned ring (desc {:#x}, driver {:#x}, device {:#x})", desc_table_,
                  avail_ring_, used_ring_);
  }
  // GuestMemory::Contains is overflow-safe and requires one region per ring.
  if (!memory.Contains(desc_table_, DescTableSize(size_))) {
    return refuse("descriptor table {:#x}+{:#x} is outside guest RAM", desc_table_,
                  DescTableSize(size_));
  }
  if (!memory.Contains(avail_ring_, AvailRingSize(size_))) {
    return refuse("driver area {:#x}+{:#x} is outside guest RAM", avail_ring_,
                  AvailRingSize(size_));
  }
  if (!memory.Contains(used_ring_, UsedRingSize(size_))) {
    return refuse("device area {:#x}+{:#x} is outside guest RAM", used_ring_, UsedRingSize(size_));
  }
  ready_ = true;
  broken_ = false;
  return {};
}

void Queue::Reset() {
  size_ = max_size_;
  desc_table_ = avail_ring_ = used_ring_ = 0;
  ready_ = false;
  broken_ = false;
  event_idx_ = false;
  indirect_desc_ = false;
  next_avail_ = next_used_ = signalled_used_ = 0;
}

PopResult Queue::MarkBroken() {
  if (!broken_) counters_.broken++;
  broken_ = true;
  return PopResult::kBroken;
}

bool Queue::ReadAvailIdx(const GuestMemory& memory, uint16_t& idx) const {
  auto value = memory.ReadObj<uint16_t>(avail_idx_addr());
  if (!value) return false;
  idx = *value;
  // Read ring entries and descriptors only after seeing the index (2.7.13.3, driver side
  // publishes with a write barrier before updating idx).
  std::atomic_thread_fence(std::memory_order_acquire);
  return true;
}

void Queue::WriteAvailEvent(const GuestMemory& memory) const {
  if (event_idx_) memory.WriteObj<uint16_t>(avail_event_addr(), next_avail_);
}

PopResult Queue::Pop(const GuestMemory& memory, DescriptorChain& out) {
  if (!ready_) return PopResult::kEmpty;
  if (broken_) return PopResult::kBroken;
  uint16_t avail_idx = 0;
  if (!ReadAvailIdx(memory, avail_idx)) return MarkBroken();
  if (avail_idx == next_avail_) {
    if (!event_idx_) return PopResult::kEmpty;
    // Ask to be notified at the next buffer, then look once more so a buffer the driver
    // added before it saw avail_event is not missed (2.7.10).
    WriteAvailEvent(memory);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!ReadAvailIdx(memory, avail_idx)) return MarkBroken();
    if (avail_idx == next_avail_) return PopResult::kEmpty;
  }
  // The driver can have at most size() entries outstanding (2.7.6).
  if (static_cast<uint16_t>(avail_idx - next_avail_) > size_) return MarkBroken();

  auto head = memory.ReadObj<uint16_t>(avail_slot_addr(next_avail_ & (size_ - 1)));
  if (!head || *head >= size_) return MarkBroken();
  next_avail_++;
  WriteAvailEvent(memory);

  if (WalkChain(memory, *head, out) == Walk::kBad) {
    counters_.bad_chains++;
    out.Clear(*head);
    return PopResult::kBadChain;
  }
  counters_.chains++;
  return PopResult::kChain;
}

Queue::Walk Queue::AddBuffer(const GuestMemory& memory, const Descriptor& desc,
                             DescriptorChain& out) {
  bool writable = (desc.flags & kDescFWrite) != 0;
  uint64_t total = uint64_t{out.readable_len_} + out.writable_len_ + desc.len;
  if (total > kMaxChainLen) return Walk::kBad;
  if (desc.len == 0) return Walk::kOk;  // harmless: nothing to read or write
  // Each buffer must lie inside one RAM region, so readers can take it as one span.
  if (!memory.Contains(desc.addr, desc.len)) return Walk::kBad;
  out.buffers_.push_back(ChainBuffer{desc.addr, desc.len, writable});
  if (writable) {
    out.writable_len_ += desc.len;
  } else {
    out.readable_count_++;
    out.readable_len_ += desc.len;
  }
  return Walk::kOk;
}

Queue::Walk Queue::WalkChain(const GuestMemory& memory, uint16_t head, DescriptorChain& out) const {
  out.Clear(head);
  GuestAddress table = desc_table_;
  uint32_t table_entries = size_;
  bool indirect = false;
  uint32_t index = head;
  // Bound: a chain visits at most table_entries descriptors of the table it is in
  // (2.7.5.2: "A driver MUST NOT create a descriptor chain longer than the Queue Size").
  uint32_t visited_in_table = 0;
  bool saw_writable = false;
  while (true) {
    if (index >= table_entries || visited_in_table++ >= table_entries) return Walk::kBad;
    auto desc = memory.ReadObj<Descriptor>(table + 16ull * index);
    if (!desc) return Walk::kBad;
    out.descriptor_count_++;
    if (desc->flags & kDescFIndirect) {
      // 2.7.5.3.1: only when negotiated; never inside an indirect table; never with NEXT;
      // len a multiple of 16.
      if (!indirect_desc_ || indirect || (desc->flags & kDescFNext)) return Walk::kBad;
      if (desc->len == 0 || desc->len % 16 != 0 || desc->len / 16 > kMaxIndirectEntries) {
        return Walk::kBad;
      }
      if (!memory.Contains(desc->addr, desc->len)) return Walk::kBad;
      table = desc->addr;
      table_entries = desc->len / 16;
      indirect = true;
      index = 0;
      visited_in_table = 0;
      continue;
    }
    bool writable = (desc->flags & kDescFWrite) != 0;
    if (!writable && saw_writable) return Walk::kBad;  // 2.7.4.2
    saw_writable |= writable;
    if (AddBuffer(memory, *desc, out) == Walk::kBad) return Walk::kBad;
    if (!(desc->flags & kDescFNext)) return Walk::kOk;
    index = desc->next;
  }
}

bool Queue::AddUsed(const GuestMemory& memory, uint16_t head, uint32_t len) {
  if (!ready_ || head >= size_) {
    counters_.bad_used++;
    return false;
  }
  if (!memory.WriteObj(used_slot_addr(next_used_ & (size_ - 1)), UsedElement{head, len})) {
    counters_.bad_used++;
    return false;
  }
  // The element must be visible before the index that publishes it (2.7.8).
  std::atomic_thread_fence(std::memory_order_release);
  next_used_++;
  memory.WriteObj<uint16_t>(used_idx_addr(), next_used_);
  return true;
}

bool Queue::NeedsNotification(const GuestMemory& memory) {
  if (!ready_) return false;
  // Order the used idx store before reading the driver's suppression fields (2.7.10).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t old_used = signalled_used_;
  signalled_used_ = next_used_;
  if (old_used == next_used_) return false;
  if (event_idx_) {
    auto used_event = memory.ReadObj<uint16_t>(used_event_addr());
    return !used_event || NeedEvent(*used_event, next_used_, old_used);
  }
  auto flags = memory.ReadObj<uint16_t>(avail_ring_);
  return !flags || !(*flags & kAvailFNoInterrupt);
}

QueueState Queue::state() const {
  return QueueState{size_,       desc_table_, avail_ring_,     used_ring_, ready_,
                    next_avail_, next_used_,  signalled_used_, event_idx_, indirect_desc_};
}

Status Queue::Restore(const GuestMemory& memory, const QueueState& state) {
  Reset();
  set_size(state.size);
  set_desc_table(state.desc_table);
  set_avail_ring(state.avail_ring);
  set_used_ring(state.used_ring);
  set_event_idx(state.event_idx);
  set_indirect_desc(state.indirect_desc);
  if (state.ready) {
    if (auto status = Activate(memory); !status) {
      Reset();
      return Wrap("restoring virtqueue", status.error());
    }
  }
  next_avail_ = state.next_avail;
  next_used_ = state.next_used;
  signalled_used_ = state.signalled_used;
  return {};
}

}  // namespace vireo::virtio
