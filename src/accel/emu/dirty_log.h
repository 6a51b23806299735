// The software CPU's dirty-page log: one bit per 4 KiB page of each RAM region, set by
// guest stores (Interpreter::LinearWrite) while tracking is on. The same contract as KVM's
// dirty log: only guest CPU writes are tracked, not the VMM's own (device DMA).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "memory/guest_memory.h"

namespace vireo::emu {

class DirtyLog {
 public:
  explicit DirtyLog(const GuestMemory& memory);

  void Start() { enabled_.store(true, std::memory_order_release); }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  // Marks the pages of [physical, physical + len) that lie in RAM. Lock-free: vCPUs call it.
  void Mark(uint64_t physical, uint64_t len);
  // Per region (GuestMemory order), the bitmap of pages written since the last fetch;
  // clears it.
  std::vector<std::vector<uint64_t>> Fetch();

 private:
  struct Region {
    uint64_t base = 0;
    uint64_t pages = 0;
    std::unique_ptr<std::atomic<uint64_t>[]> bits;
  };
  std::vector<Region> regions_;
  std::atomic<bool> enabled_{false};
};

}  // namespace vireo::emu
