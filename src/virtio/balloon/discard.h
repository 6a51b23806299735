// Giving guest pages back to the host: madvise(MADV_DONTNEED) on the host mapping behind a
// guest-physical range, reached only through GuestMemory::Span (rule 1), so a discard never
// touches anything outside one RAM region. The next guest access to a discarded page of
// anonymous memory faults in a fresh zero page. Used by virtio-balloon's inflateq (5.5.6.1)
// and reporting_vq (5.5.6.7).
//
// Hugepage-backed regions: the kernel frees only whole huge pages inside the range (it rounds
// the end down), so discarding 4 KiB pages there is safe but may free nothing; mlock()ed
// memory refuses MADV_DONTNEED (EINVAL), which is reported as kFailed and counted.
#pragma once

#include <cstdint>

#include "memory/guest_memory.h"

namespace vireo::virtio::balloon {

// The balloon's page size: PFNs on the inflate and deflate queues are in 4 KiB units,
// whatever the guest's own page size (5.5.6: VIRTIO_BALLOON_PFN_SHIFT 12).
inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = 1ull << kPageShift;

enum class DiscardResult {
  kDone,        // the host pages are gone (or were never faulted in)
  kOutsideRam,  // [addr, addr+len) is not wholly inside one RAM region: a guest mistake
  kUnaligned,   // addr, len or the host address is not page aligned, or len is 0
  kFailed,      // madvise refused (mlocked memory, old kernel with hugetlbfs)
};

// Drops the host pages backing guest [addr, addr+len). Thread-safe (madvise only).
DiscardResult DiscardGuestRange(const GuestMemory& memory, GuestAddress addr, uint64_t len);

struct DiscardStats {
  uint64_t pages = 0;     // PFNs accepted (inside RAM)
  uint64_t bad_pfns = 0;  // PFNs outside RAM: ignored
  uint64_t calls = 0;     // madvise calls after coalescing
  uint64_t bytes = 0;     // bytes discarded by successful calls
  uint64_t failures = 0;  // calls that failed (the pages stay; the guest is not told)
};

// Collects PFNs and discards runs of consecutive pages with one madvise each. A run never
// crosses a RAM region boundary (every extension is checked with GuestMemory::Span). Flush()
// discards the pending run; the destructor does not, so call it before reading stats().
class PageDiscarder {
 public:
  explicit PageDiscarder(const GuestMemory& memory) : memory_(memory) {}

  // Queues page `pfn`; false (counted in bad_pfns) when it is not wholly inside RAM.
  bool Add(uint32_t pfn);
  void Flush();
  const DiscardStats& stats() const { return stats_; }

 private:
  const GuestMemory& memory_;
  GuestAddress run_start_ = 0;
  uint64_t run_pages_ = 0;
  DiscardStats stats_;
};

}  // namespace vireo::virtio::balloon
