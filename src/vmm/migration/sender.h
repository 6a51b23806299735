// The source side of a live migration: pre-copy rounds driven by the dirty log while the guest
// runs, then stop-and-copy of what is left with the VM's state, and the destination's
// acknowledgement. Runs on its own thread; any failure before the acknowledgement resumes the
// guest here (docs/snapshot-migration.md, "Live migration"). With post-copy, pre-copy that does
// not converge ends in a switch: the destination runs the guest and the pages not yet sent
// follow, the ones it faults on first; a failure after the switch leaves the VM paused here.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/result.h"
#include "block/dirty_chunks.h"
#include "memory/guest_memory.h"
#include "vmm/vm_controller.h"

namespace vireo::migration {

// Block migration's view of one disk: its write tracking and reads of its current contents
// from the migration thread, concurrently with the guest's I/O.
class DiskSource {
 public:
  virtual ~DiskSource() = default;
  virtual block::DirtyChunkMap& dirty() = 0;
  virtual Status Read(uint64_t offset, std::span<uint8_t> out) = 0;
};

// What the sender needs of the VM, and nothing more (so a test can fake it).
class MigrationSource {
 public:
  virtual ~MigrationSource() = default;
  virtual const GuestMemory& memory() const = 0;
  virtual Status StartDirtyLog() = 0;
  // Per region, a bitmap of the pages written since the previous call.
  virtual Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() = 0;
  virtual Status Pause() = 0;
  virtual void Resume() = 0;
  // The paused VM's snapshot state file (vmm/snapshot/state_file.h).
  virtual Result<std::vector<uint8_t>> SaveState() = 0;
  // The destination runs the VM now: end it here.
  virtual void Finish(const std::string& detail) = 0;
  // Block migration: every disk, in the configuration's order.
  virtual Result<std::vector<std::unique_ptr<DiskSource>>> OpenDisks() {
    return std::vector<std::unique_ptr<DiskSource>>{};
  }
};

class OutgoingMigration {
 public:
  static constexpr int kMaxRounds = 30;  // then stop-and-copy whatever is left
  static constexpr int kIoTimeoutMs = 30000;

  OutgoingMigration(std::unique_ptr<MigrationSource> source, const MigrationRequest& request);
  // Cancels (the guest resumes here) and joins.
  ~OutgoingMigration();
  OutgoingMigration(const OutgoingMigration&) = delete;
  OutgoingMigration& operator=(const OutgoingMigration&) = delete;

  void Start();
  // Ends the transfer early; the VM resumes if it was paused for it.
  void Cancel();
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  MigrationInfo info() const;
  bool active() const;
  // True once, after a post-copy migration failed past its switch: the VM is left paused.
  bool TakeLeftPaused() { return left_paused_.exchange(false); }

 private:
  void Main();
  Status Transfer();
  Status SendPages(std::span<const uint64_t> pages, bool skip_zero);
  // Block migration: the chunks of disk `disk` listed, read now, zero chunks as such.
  Status SendDiskChunks(uint32_t disk, std::span<const uint64_t> chunks);
  // Takes (and clears) every disk's dirty chunks and sends them.
  Status SendDirtyChunks();
  uint64_t DirtyDiskBytes() const;
  Status SendFrame(std::span<const uint8_t> frame, const char* what);
  Status CheckDestination();
  // Post-copy after the switch (the VM paused here, the destination given the missing list).
  Status PostCopy(std::span<const uint64_t> missing,
                  std::chrono::steady_clock::time_point pause_start, bool& resume_armed);
  // The destination runs the guest: final stats, and the VM ends here.
  Status Finished();
  void Throttle();
  void Update(const std::function<void(MigrationInfo&)>& change);

  std::unique_ptr<MigrationSource> source_;
  std::thread thread_;
  std::atomic<bool> cancel_{false};
  std::atomic<int> fd_{-1};  // the connection, for Cancel to shut down
  std::atomic<bool> left_paused_{false};
  std::chrono::steady_clock::time_point start_;
  uint64_t bytes_sent_ = 0;                         // owned by the migration thread
  bool postcopy_committed_ = false;                 // owned by the migration thread
  std::vector<std::unique_ptr<DiskSource>> disks_;  // owned by the migration thread
  mutable std::mutex mu_;
  MigrationInfo info_;  // guarded by mu_
};

// Page numbers (RAM offset / 4 KiB, regions in order) of the bits set in `bitmaps`.
std::vector<uint64_t> DirtyPageList(std::span<const std::vector<uint64_t>> bitmaps,
                                    std::span<const GuestMemory::Region> regions);

}  // namespace vireo::migration
