// virtio block device (virtio 1.2, 5.2 "Block Device"): device ID 2, one request queue
// (no VIRTIO_BLK_F_MQ yet), backed by a block::BlockBackend.
//
// Features (5.2.3): SEG_MAX, BLK_SIZE and FLUSH always; RO when the backend is read-only;
// DISCARD and WRITE_ZEROES when BlkOptions::discard is set and the backend supports them.
// The configuration space (5.2.4, struct virtio_blk_config) is read-only; capacity is the
// backend's size rounded down to 512-byte sectors, so a partial last sector is invisible.
//
// Requests are parsed by blk_request.h; a bad one completes at once with IOERR or UNSUPP
// (or used length 0 when it has no status byte) and is counted. Good ones go to the backend
// asynchronously, several in flight; DISCARD/WRITE_ZEROES segments go one after another.
// The used length is the bytes written to the guest: data + 1 for a successful IN, the ID
// bytes + 1 for GET_ID, and 1 (the status) otherwise.
//
// Threading: the queue and the backend are used on the event loop thread only. QueueNotify
// may be called from any thread: it signals notify_fd(), which the loop watches (and which
// the VMM may register with KVM as the queue's ioeventfd, so a guest kick never leaves the
// kernel). The backend's completion_fd() is watched too. Activate registers both fds;
// Reset removes them (waiting for a running handler) and then waits for the requests still
// in flight, because they point into guest memory and their slots are reused afterwards;
// their completions are dropped (the driver is resetting the rings). Reset must not be
// called from one of this device's own handlers. The EventLoop must outlive the device.
//
// Hot path: no allocation and no exceptions. Per-request state lives in a pool of
// kQueueSize slots allocated at construction; a request's cookie is its slot. When the pool
// or the backend is full the device stops popping and resumes on the next completion.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "block/backend.h"
#include "block/dirty_chunks.h"
#include "virtio/blk_request.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace vireo::virtio {

inline constexpr uint32_t kDeviceIdBlock = 2;  // 5 "Device Types"

// Feature bits (5.2.3).
inline constexpr uint64_t kBlkFSizeMax = 1ull << 1;
inline constexpr uint64_t kBlkFSegMax = 1ull << 2;
inline constexpr uint64_t kBlkFGeometry = 1ull << 4;
inline constexpr uint64_t kBlkFRo = 1ull << 5;
inline constexpr uint64_t kBlkFBlkSize = 1ull << 6;
inline constexpr uint64_t kBlkFFlush = 1ull << 9;
inline constexpr uint64_t kBlkFTopology = 1ull << 10;
inline constexpr uint64_t kBlkFConfigWce = 1ull << 11;
inline constexpr uint64_t kBlkFMq = 1ull << 12;
inline constexpr uint64_t kBlkFDiscard = 1ull << 13;
inline constexpr uint64_t kBlkFWriteZeroes = 1ull << 14;

// struct virtio_blk_config (5.2.4), up to the secure-erase fields (no zoned block device).
struct BlkConfig {
  uint64_t capacity;  // in 512-byte sectors
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;  // struct virtio_blk_geometry
  uint8_t heads;
  uint8_t sectors;
  uint32_t blk_size;
  uint8_t physical_block_exp;  // struct virtio_blk_topology
  uint8_t alignment_offset;
  uint16_t min_io_size;
  uint32_t opt_io_size;
  uint8_t writeback;
  uint8_t unused0;
  uint16_t num_queues;
  uint32_t max_discard_sectors;
  uint32_t max_discard_seg;
  uint32_t discard_sector_alignment;
  uint32_t max_write_zeroes_sectors;
  uint32_t max_write_zeroes_seg;
  uint8_t write_zeroes_may_unmap;
  uint8_t unused1[3];
  uint32_t max_secure_erase_sectors;
  uint32_t max_secure_erase_seg;
  uint32_t secure_erase_sector_alignment;
};
static_assert(sizeof(BlkConfig) == 72);

struct BlkOptions {
  std::string serial;  // GET_ID; at most kBlkIdBytes (20) bytes
  bool discard = false;
};

struct BlkCounters {
  uint64_t reads = 0;  // requests by type, counted when popped
  uint64_t writes = 0;
  uint64_t flushes = 0;
  uint64_t get_ids = 0;
  uint64_t discards = 0;
  uint64_t write_zeroes = 0;
  uint64_t unsupported = 0;  // completed with UNSUPP
  uint64_t bytes_read = 0;   // successful IN data
  uint64_t bytes_written = 0;
  uint64_t io_errors = 0;              // completed with IOERR (bad requests and backend errors)
  uint64_t backend_errors = 0;         // of which the backend failed
  uint64_t bad_requests = 0;           // guest mistakes: rejected requests, no status, bad chains
  uint64_t no_status = 0;              // completed with used length 0: no status byte
  uint64_t bad_chains = 0;             // Queue::Pop kBadChain
  uint64_t backend_full = 0;           // times the backend refused a request (retried later)
  uint64_t pool_full = 0;              // times every slot was in use (the driver reused heads)
  uint64_t dropped_notifications = 0;  // for a queue index other than 0
};

class Blk : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  // seg_max (5.2.4): data buffers per request, leaving room for header and status in a
  // direct chain; requests with up to block::BlockBackend::kMaxSegments are still accepted.
  static constexpr uint32_t kSegMax = kQueueSize - 2;
  static constexpr uint32_t kMaxDwzSectors = 1u << 30;    // per discard/write-zeroes segment
  static constexpr uint32_t kDiscardSectorAlignment = 8;  // 4 KiB: the host's hole granularity
  static constexpr size_t kSubmitBatch = 32;

  // Fails when the serial is longer than 20 bytes or no eventfd can be made.
  static Result<std::unique_ptr<Blk>> Create(std::unique_ptr<block::BlockBackend> backend,
                                             BlkOptions options, EventLoop& loop);
  ~Blk() override;  // Reset()s
  Blk(const Blk&) = delete;
  Blk& operator=(const Blk&) = delete;

  std::string_view name() const override { return "blk"; }
  uint32_t device_type() const override { return kDeviceIdBlock; }
  uint64_t device_features() const override { return features_; }
  uint16_t num_queues() const override { return 1; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  bool ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(ActivateContext context) override;
  void Reset() override;
  void QueueNotify(uint16_t index) override;
  void QueueNotifyOnIoThread(uint16_t index) override;
  bool needs_reset() const override;

  // The eventfd that QueueNotify(0) signals; hand it to KVM as the queue's ioeventfd.
  int notify_fd(uint16_t queue) const override { return queue == 0 ? notify_.fd() : -1; }
  const BlkConfig& config() const { return config_; }
  BlkCounters counters() const;
  size_t in_flight() const;  // backend requests not yet completed
  // Chunks written since block migration started tracking (set as writes, discards and
  // write-zeroes complete; docs/snapshot-migration.md, "Block migration").
  block::DirtyChunkMap& dirty_chunks() { return dirty_; }
  // For block migration's reads of the disk from another thread (through the Image where the
  // backend has one); the backend itself stays the I/O thread's.
  block::BlockBackend& backend() { return *backend_; }

 private:
  struct Slot {
    BlkRequest request;
    uint16_t head = 0;
    size_t next_segment = 0;  // DISCARD/WRITE_ZEROES: the segment to submit next
    std::array<iovec, block::BlockBackend::kMaxSegments> iov{};
  };

  Blk(std::unique_ptr<block::BlockBackend> backend, BlkOptions options, EventLoop& loop,
      EventFd notify);
  // Loop-thread handlers.
  void OnNotify();
  void OnCompletions();
  // The backend's completion handler (inside ProcessCompletions, mu_ held).
  void OnBackendDone(void* cookie, int32_t result);
  // With mu_ held, on the loop thread (or in Reset once the handlers are gone).
  void ProcessQueue();
  void HandleChain();
  bool SubmitPending();
  block::BlockRequest ToBackend(Slot& slot);
  void Complete(uint16_t head, uint32_t used_len);  // AddUsed, noting that a signal may be due
  void CompleteSlot(Slot& slot, uint8_t status);
  void FreeSlot(Slot& slot);
  void MaybeSignal();
  void DrainInFlight();

  const std::unique_ptr<block::BlockBackend> backend_;
  const BlkOptions options_;
  EventLoop& loop_;
  const EventFd notify_;
  const uint64_t features_;
  BlkConfig config_{};
  std::array<uint8_t, kBlkIdBytes> id_{};
  block::DirtyChunkMap dirty_;

  mutable std::mutex mu_;
  // Guarded by mu_. Set between Activate and Reset.
  bool active_ = false;
  bool registered_ = false;  // our fds are in the loop
  const GuestMemory* memory_ = nullptr;
  Queue* queue_ = nullptr;
  QueueInterrupt* interrupt_ = nullptr;
  BlkLimits limits_;
  bool needs_reset_ = false;
  bool used_pending_ = false;  // AddUsed since the last NeedsNotification
  DescriptorChain chain_;
  std::vector<Slot> slots_;        // kQueueSize
  std::vector<uint16_t> free_;     // free slot indices; capacity kQueueSize
  std::vector<uint16_t> pending_;  // ring of slots waiting for the backend
  size_t pending_head_ = 0;
  size_t pending_count_ = 0;
  size_t in_flight_ = 0;
  std::array<block::BlockRequest, kSubmitBatch> batch_{};
  BlkCounters counters_;
};

}  // namespace vireo::virtio
