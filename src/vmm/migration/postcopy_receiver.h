// The destination's half of post-copy (docs/snapshot-migration.md, "Post-copy"). The pages the
// source had not sent when it stopped are dropped here and guest RAM is registered with
// userfaultfd, so a vCPU (inside KVM_RUN) or a device thread touching one of them blocks in the
// kernel until the page is placed. A fault thread asks the source for each faulted page
// (PAGE_REQUEST) and a stream thread places the pages the source sends, requested or in the
// background (UFFDIO_COPY, which wakes whoever waits on the page). Pages never sent because
// they were zero are filled with zeros on their first fault.
//
// A failure once the guest runs here cannot be survived: part of its memory exists only at the
// source, so the process exits with status 1 naming the problem (the source keeps the whole
// memory, paused). Before the acknowledgement the source still owns the guest and resumes it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_memory.h"

namespace vireo::migration {

class PostcopyReceiver {
 public:
  // Drops the pages set in `missing` (a bitmap over RAM pages, DecodePostcopy's) from `memory`,
  // registers all of RAM with userfaultfd and starts both threads. `connection` is borrowed and
  // must outlive this object; so must `memory`'s mappings (GuestMemory may be moved).
  static Result<std::unique_ptr<PostcopyReceiver>> Start(int connection, const GuestMemory& memory,
                                                         std::vector<uint64_t> missing);
  ~PostcopyReceiver();
  PostcopyReceiver(const PostcopyReceiver&) = delete;
  PostcopyReceiver& operator=(const PostcopyReceiver&) = delete;

  // ACK(0): the VM is rebuilt and runs here; the source can no longer resume it. The second
  // ACK(0), sent once every page is in place, lets the source exit.
  Status Acknowledge();
  // Before Acknowledge: tells the source why this side gives up (it resumes the guest).
  void Refuse(const std::string& message);

  uint64_t missing_at_start() const { return missing_at_start_; }

 private:
  struct HostRegion {
    uint8_t* host;
    uint64_t size;
    uint64_t first_page;
  };

  PostcopyReceiver() = default;
  void FaultLoop();
  void StreamLoop();
  Status PlacePage(uint64_t page, std::span<const uint8_t> data);
  // Resolves a fault on a page that is not missing: zeros if nothing is there, else a wake-up.
  Status ZeroOrWake(uint64_t page);
  uint8_t* HostPage(uint64_t page) const;
  uint64_t PageOf(uint64_t host_address) const;  // ~0 outside RAM
  bool IsMissing(uint64_t page) const;
  Status Send(std::span<const uint8_t> frame);
  void SendCompletionLocked();
  // The guest cannot go on here: says why and ends the process.
  [[noreturn]] void Fatal(const std::string& reason);

  int fd_ = -1;
  UniqueFd uffd_;
  UniqueFd stop_event_;  // eventfd: ends the fault thread
  std::vector<HostRegion> regions_;
  uint64_t total_pages_ = 0;
  uint64_t missing_at_start_ = 0;
  // One bit per page: still to come from the source / already asked for.
  std::unique_ptr<std::atomic<uint64_t>[]> missing_;
  std::unique_ptr<std::atomic<uint64_t>[]> requested_;
  std::atomic<uint64_t> left_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point start_;

  std::mutex send_mu_;         // the fault thread, the stream thread and Acknowledge all send
  bool acknowledged_ = false;  // guarded by send_mu_
  bool complete_ = false;      // guarded by send_mu_

  std::thread fault_thread_;
  std::thread stream_thread_;
};

}  // namespace vireo::migration
