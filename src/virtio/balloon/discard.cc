#include "virtio/balloon/discard.h"

#include <sys/mman.h>

#include <cerrno>

namespace vireo::virtio::balloon {

DiscardResult DiscardGuestRange(const GuestMemory& memory, GuestAddress addr, uint64_t len) {
  if (len == 0 || addr % kPageSize != 0 || len % kPageSize != 0) return DiscardResult::kUnaligned;
  auto span = memory.Span(addr, len);
  if (!span) return DiscardResult::kOutsideRam;
  // A region whose guest base is not page aligned puts guest pages across host pages.
  if (reinterpret_cast<uintptr_t>(span->data()) % kPageSize != 0) return DiscardResult::kUnaligned;
  // Bounded: EINTR cannot happen for madvise, EAGAIN is retried a few times only.
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (::madvise(span->data(), span->size(), MADV_DONTNEED) == 0) {
      memory.MarkWritten(addr, len);  // now zeros: a migration or diff snapshot must carry that
      return DiscardResult::kDone;
    }
    if (errno != EAGAIN) break;
  }
  return DiscardResult::kFailed;
}

bool PageDiscarder::Add(uint32_t pfn) {
  const GuestAddress addr = static_cast<GuestAddress>(pfn) << kPageShift;
  if (run_pages_ > 0 && addr == run_start_ + run_pages_ * kPageSize &&
      memory_.Contains(run_start_, (run_pages_ + 1) * kPageSize)) {
    run_pages_++;
    stats_.pages++;
    return true;
  }
  if (!memory_.Contains(addr, kPageSize)) {
    stats_.bad_pfns++;
    return false;
  }
  Flush();
  run_start_ = addr;
  run_pages_ = 1;
  stats_.pages++;
  return true;
}

void PageDiscarder::Flush() {
  if (run_pages_ == 0) return;
  const uint64_t len = run_pages_ * kPageSize;
  stats_.calls++;
  if (DiscardGuestRange(memory_, run_start_, len) == DiscardResult::kDone) {
    stats_.bytes += len;
  } else {
    stats_.failures++;
  }
  run_pages_ = 0;
}

}  // namespace vireo::virtio::balloon
