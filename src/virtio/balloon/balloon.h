// virtio memory balloon (virtio 1.2, 5.5 "Traditional Memory Balloon Device"): device ID 5.
//
// The host sets a target (num_pages, SetTarget) and signals a configuration change; the
// driver inflates the balloon by sending PFNs (le32, 4 KiB units) on inflateq, whose host
// pages the device discards (madvise MADV_DONTNEED through discard.h), and deflates it on
// deflateq, which needs no work for anonymous memory (a touched page faults back in). The
// driver reports the balloon's size in `actual`.
//
// Features (5.5.3): STATS_VQ (the driver's memory statistics, 5.5.6.3), DEFLATE_ON_OOM (no
// device action), PAGE_REPORTING (free page reporting, 5.5.6.7: the device discards the
// reported ranges). Not offered: MUST_TELL_HOST (no deflate work to wait for), FREE_PAGE_HINT
// (for migration) and PAGE_POISON (so a guest that poisons free pages turns reporting off).
//
// Queues (5.5.2): inflateq 0, deflateq 1, then statsq if STATS_VQ was negotiated, then
// reporting_vq if PAGE_REPORTING was: an absent queue takes no index (so reporting_vq is 2
// without STATS_VQ), which is how the Linux driver numbers them. num_queues() is the most
// there can be (4); the roles are fixed at Activate from the negotiated features.
//
// Guest mistakes are data: PFNs outside RAM are counted and ignored; a chain carries at most
// kMaxPfnsPerChain PFNs (the rest are ignored and the chain counted); bad chains complete
// with length 0; a garbage avail ring sets DEVICE_NEEDS_RESET.
//
// Stats protocol (5.5.6.3): the driver posts one buffer of struct virtio_balloon_stat; the
// device parses it and keeps it. RequestStats() returns it (used, length 0, interrupt), and
// the driver posts it again with fresh values. LatestStats() is the last set received.
//
// Threading: queues are processed on the EventLoop thread only. QueueNotify, SetTarget and
// RequestStats may be called from any thread; QueueNotify(q) signals notify_fd(q), which the
// VMM may hand to KVM as that queue's ioeventfd. Activate registers the fds with the loop;
// Reset removes them (waiting for a running handler) and must not be called from one of this
// device's handlers. The EventLoop must outlive the device.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "virtio/balloon/balloon_state.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace vireo::virtio::balloon {

inline constexpr uint32_t kDeviceIdBalloon = 5;  // 5 "Device Types"

// Feature bits (5.5.3).
inline constexpr uint64_t kBalloonFMustTellHost = 1ull << 0;
inline constexpr uint64_t kBalloonFStatsVq = 1ull << 1;
inline constexpr uint64_t kBalloonFDeflateOnOom = 1ull << 2;
inline constexpr uint64_t kBalloonFFreePageHint = 1ull << 3;
inline constexpr uint64_t kBalloonFPagePoison = 1ull << 4;
inline constexpr uint64_t kBalloonFPageReporting = 1ull << 5;

// struct virtio_balloon_config (5.5.4), without free_page_hint_cmd_id and poison_val, which
// exist only with FREE_PAGE_HINT and PAGE_POISON.
struct BalloonConfig {
  uint32_t num_pages;  // target balloon size in 4 KiB pages; written by the device
  uint32_t actual;     // current balloon size; written by the driver
};
static_assert(sizeof(BalloonConfig) == 8);

// Statistic tags (5.5.6.3, struct virtio_balloon_stat). Tags beyond these are kept too.
inline constexpr uint16_t kStatSwapIn = 0;
inline constexpr uint16_t kStatSwapOut = 1;
inline constexpr uint16_t kStatMajorFaults = 2;
inline constexpr uint16_t kStatMinorFaults = 3;
inline constexpr uint16_t kStatFreeMemory = 4;
inline constexpr uint16_t kStatTotalMemory = 5;
inline constexpr uint16_t kStatAvailableMemory = 6;
inline constexpr uint16_t kStatDiskCaches = 7;
inline constexpr uint16_t kStatHugetlbAllocations = 8;
inline constexpr uint16_t kStatHugetlbFailures = 9;
inline constexpr size_t kStatSize = 10;  // le16 tag, le64 val, packed

struct BalloonOptions {
  bool stats = true;           // offer STATS_VQ
  bool deflate_on_oom = true;  // offer DEFLATE_ON_OOM
  bool page_reporting = true;  // offer PAGE_REPORTING
};

struct BalloonCounters {
  uint64_t inflate_chains = 0;
  uint64_t deflate_chains = 0;
  uint64_t pages_inflated = 0;          // PFNs inside RAM received on inflateq
  uint64_t pages_deflated = 0;          // PFNs inside RAM received on deflateq
  uint64_t bad_pfns = 0;                // PFNs outside RAM (either queue): ignored
  uint64_t bytes_discarded = 0;         // inflate and reporting discards that succeeded
  uint64_t discard_calls = 0;           // madvise calls (runs of consecutive pages coalesced)
  uint64_t discard_failures = 0;        // madvise refused: the pages stay resident
  uint64_t truncated_chains = 0;        // more than kMaxPfnsPerChain PFNs, or a partial PFN
  uint64_t bad_chains = 0;              // Queue::Pop kBadChain
  uint64_t reports = 0;                 // reporting_vq chains
  uint64_t bad_reports = 0;             // reported ranges outside RAM or not page aligned
  uint64_t stats_updates = 0;           // stats buffers parsed
  uint64_t stats_requests = 0;          // RequestStats() answered by returning the buffer
  uint64_t stats_requests_dropped = 0;  // RequestStats() with no buffer held
  uint64_t stats_buffers_replaced = 0;  // the driver posted a second buffer (returned)
  uint64_t dropped_notifications = 0;   // no such queue
};

class Balloon final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint16_t kMaxQueues = 4;
  // Linux sends at most 256 PFNs per chain (VIRTIO_BALLOON_ARRAY_PFNS_MAX); leave room.
  static constexpr uint32_t kMaxPfnsPerChain = 4096;
  static constexpr uint32_t kMaxStats = 64;  // entries kept from one stats buffer

  // Fails when no eventfd can be made.
  static Result<std::unique_ptr<Balloon>> Create(BalloonOptions options, EventLoop& loop);
  ~Balloon() override;  // Reset()s
  Balloon(const Balloon&) = delete;
  Balloon& operator=(const Balloon&) = delete;

  std::string_view name() const override { return "balloon"; }
  uint32_t device_type() const override { return kDeviceIdBalloon; }
  uint64_t device_features() const override { return features_; }
  uint16_t num_queues() const override { return kMaxQueues; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  bool ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(ActivateContext context) override;
  void Reset() override;
  void QueueNotify(uint16_t index) override;
  bool needs_reset() const override;

  // ---- Host side (any thread). ----
  // Sets num_pages and, if it changed while active, signals a configuration change.
  // Fails when `pages` does not fit in le32 num_pages.
  Status SetTarget(uint64_t pages);
  uint32_t target() const;
  uint32_t actual() const;  // as the driver last wrote it
  // Asks the driver for fresh statistics by returning the stats buffer it posted. Async:
  // watch counters().stats_updates.
  void RequestStats();
  // The (tag, value) pairs of the last stats buffer, in the driver's order, one per tag.
  std::vector<std::pair<uint16_t, uint64_t>> LatestStats() const;
  BalloonCounters counters() const;

  // The eventfd QueueNotify(index) signals; -1 for an index >= num_queues().
  int notify_fd(uint16_t index) const override;

  // ---- Snapshot (balloon_persist.cc). ----
  BalloonSavedState SaveState() const;
  // Before the transport's restore activates the device: target, actual, the held stats
  // buffer and the last statistics. Refuses values out of bounds, naming them.
  Status RestoreState(const BalloonSavedState& state);

 private:
  enum class Role : uint8_t { kNone, kInflate, kDeflate, kStats, kReporting };

  Balloon(BalloonOptions options, EventLoop& loop, std::array<EventFd, kMaxQueues> notify,
          EventFd stats_request);
  // Loop-thread handlers.
  void OnNotify(uint16_t index);
  void OnStatsRequest();
  // With mu_ held, on the loop thread (or in Activate/Reset with no handler registered).
  void ProcessQueue(uint16_t index);
  // The used length for the chain just popped, or nullopt to keep it (stats). Sets `used`
  // when it put another chain on the used ring.
  std::optional<uint32_t> HandleChain(Role role, uint16_t index, bool& used);
  void HandlePfns(bool inflate);
  void HandleReport();
  bool HandleStats(uint16_t index);
  void MarkBroken();
  void Unregister();

  const uint64_t features_;
  EventLoop& loop_;
  const std::array<EventFd, kMaxQueues> notify_;
  const EventFd stats_request_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  BalloonConfig config_{};
  bool active_ = false;
  bool registered_ = false;  // our fds are in the loop
  const GuestMemory* memory_ = nullptr;
  std::span<Queue> queues_;
  QueueInterrupt* interrupt_ = nullptr;
  std::array<Role, kMaxQueues> roles_{};
  bool needs_reset_ = false;
  DescriptorChain chain_;
  std::optional<uint16_t> stats_head_;                // the stats buffer the device holds
  uint16_t stats_queue_ = 0;                          // its queue index
  std::vector<std::pair<uint16_t, uint64_t>> stats_;  // capacity kMaxStats
  BalloonCounters counters_;
};

}  // namespace vireo::virtio::balloon
