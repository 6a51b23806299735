#include "vmm/migration/postcopy_receiver.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "vmm/migration/stream.h"

namespace vireo::migration {
namespace {

// userfaultfd(2), or /dev/userfaultfd where the system call is restricted
// (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE).
Result<UniqueFd> OpenUserfaultfd() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    const int syscall_errno = errno;
    UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
    if (dev) fd = ::ioctl(dev.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      return Fail(
          "post-copy needs userfaultfd: userfaultfd(2): {}; /dev/userfaultfd: {} (run as root, "
          "set vm.unprivileged_userfaultfd=1, or give this user access to /dev/userfaultfd)",
          std::strerror(syscall_errno), std::strerror(errno));
    }
  }
  UniqueFd uffd(fd);
  uffdio_api api{};
  api.api = UFFD_API;
  if (::ioctl(uffd.get(), UFFDIO_API, &api) != 0) {
    return Fail("post-copy: UFFDIO_API: {}", std::strerror(errno));
  }
  return uffd;
}

}  // namespace

Result<std::unique_ptr<PostcopyReceiver>> PostcopyReceiver::Start(int connection,
                                                                  const GuestMemory& memory,
                                                                  std::vector<uint64_t> missing) {
  std::unique_ptr<PostcopyReceiver> r(new PostcopyReceiver());
  r->fd_ = connection;
  r->start_ = std::chrono::steady_clock::now();
  for (const GuestMemory::Region& region : memory.regions()) {
    r->regions_.push_back({region.host(), region.range.size, r->total_pages_});
    r->total_pages_ += region.range.size / kPageSize;
  }
  const size_t words = (r->total_pages_ + 63) / 64;
  if (missing.size() != words) return Fail("post-copy: the missing-page bitmap does not fit RAM");
  r->missing_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  r->requested_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  for (size_t w = 0; w < words; ++w) {
    r->missing_[w].store(missing[w]);
    r->requested_[w].store(0);
    r->missing_at_start_ += static_cast<uint64_t>(__builtin_popcountll(missing[w]));
  }
  r->left_.store(r->missing_at_start_);

  r->uffd_ = VIREO_TRY(OpenUserfaultfd());
  // The copies of the missing pages that pre-copy left here are stale: drop them, so the first
  // touch faults to userfaultfd. 4 KiB pages throughout (no THP), so every fault is one page.
  for (const HostRegion& region : r->regions_) {
    ::madvise(region.host, region.size, MADV_NOHUGEPAGE);
    const uint64_t count = region.size / kPageSize;
    for (uint64_t i = 0; i < count;) {
      if (!r->IsMissing(region.first_page + i)) {
        ++i;
        continue;
      }
      uint64_t end = i + 1;
      while (end < count && r->IsMissing(region.first_page + end)) ++end;
      if (::madvise(region.host + i * kPageSize, (end - i) * kPageSize, MADV_DONTNEED) != 0) {
        return Fail("post-copy: dropping stale pages: {}", std::strerror(errno));
      }
      i = end;
    }
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uint64_t>(region.host);
    reg.range.len = region.size;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (::ioctl(r->uffd_.get(), UFFDIO_REGISTER, &reg) != 0) {
      return Fail("post-copy: registering guest RAM with userfaultfd: {}", std::strerror(errno));
    }
    constexpr uint64_t kNeeded = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE);
    if ((reg.ioctls & kNeeded) != kNeeded) {
      return Fail("post-copy: this kernel cannot UFFDIO_COPY/ZEROPAGE into guest RAM");
    }
  }
  r->stop_event_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!r->stop_event_) return Fail("post-copy: eventfd: {}", std::strerror(errno));
  r->fault_thread_ = std::thread([p = r.get()] { p->FaultLoop(); });
  r->stream_thread_ = std::thread([p = r.get()] { p->StreamLoop(); });
  return r;
}

PostcopyReceiver::~PostcopyReceiver() {
  stopping_.store(true);
  if (stream_thread_.joinable()) {
    ::shutdown(fd_, SHUT_RDWR);  // unblocks the stream thread's read
    stream_thread_.join();
  }
  if (fault_thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_event_.get(), &one, sizeof(one));
    fault_thread_.join();
  }
}

uint8_t* PostcopyReceiver::HostPage(uint64_t page) const {
  for (const HostRegion& region : regions_) {
    const uint64_t count = region.size / kPageSize;
    if (page >= region.first_page && page < region.first_page + count) {
      return region.host + (page - region.first_page) * kPageSize;
    }
  }
  return nullptr;
}

uint64_t PostcopyReceiver::PageOf(uint64_t host_address) const {
  for (const HostRegion& region : regions_) {
    const uint64_t base = reinterpret_cast<uint64_t>(region.host);
    if (host_address >= base && host_address - base < region.size) {
      return region.first_page + (host_address - base) / kPageSize;
    }
  }
  return ~uint64_t{0};
}

bool PostcopyReceiver::IsMissing(uint64_t page) const {
  return (missing_[page / 64].load() >> (page % 64)) & 1;
}

Status PostcopyReceiver::Send(std::span<const uint8_t> frame) {
  std::lock_guard lock(send_mu_);
  return SendAll(fd_, frame);
}

void PostcopyReceiver::SendCompletionLocked() {
  // The source exits on this; if it cannot be told, it keeps the VM paused, and this side,
  // which has every page, runs on.
  (void)SendAll(fd_, EncodeFrame(FrameType::kAck, EncodeAck(0, "post-copy complete")));
}

Status PostcopyReceiver::Acknowledge() {
  std::lock_guard lock(send_mu_);
  if (auto sent = SendAll(fd_, EncodeFrame(FrameType::kAck, EncodeAck(0, "resumed"))); !sent) {
    return Fail("acknowledging to the source: {}; the source keeps the VM", sent.error().message);
  }
  acknowledged_ = true;
  if (complete_) SendCompletionLocked();
  return {};
}

void PostcopyReceiver::Refuse(const std::string& message) {
  stopping_.store(true);
  ::shutdown(fd_, SHUT_RD);  // the stream thread stops reading
  if (stream_thread_.joinable()) stream_thread_.join();
  std::lock_guard lock(send_mu_);
  (void)SendAll(fd_, EncodeFrame(FrameType::kAck, EncodeAck(1, message)));
}

void PostcopyReceiver::Fatal(const std::string& reason) {
  bool acknowledged = true;
  if (send_mu_.try_lock()) {  // best effort: the source learns why (it may be gone)
    acknowledged = acknowledged_;
    (void)SendAll(fd_, EncodeFrame(FrameType::kAck, EncodeAck(1, reason)));
    send_mu_.unlock();
  }
  if (acknowledged) {
    fmt::print(stderr,
               "vireo: error: --incoming: post-copy failed after the switch: {}; {} of the guest's "
               "pages never arrived, so the VM cannot run here and is stopped; the source, if it "
               "still runs, keeps its whole memory, paused (PUT /vm/resume there runs it "
               "again)\n",
               reason, left_.load());
  } else {
    fmt::print(stderr,
               "vireo: error: --incoming: post-copy: {} (nothing kept; the source resumes the "
               "VM)\n",
               reason);
  }
  std::fflush(stderr);
  // vCPUs and device threads may be blocked on pages that will never come: end them all.
  ::_exit(1);
}

Status PostcopyReceiver::ZeroOrWake(uint64_t page) {
  uint8_t* host = HostPage(page);
  for (;;) {
    uffdio_zeropage zero{};
    zero.range.start = reinterpret_cast<uint64_t>(host);
    zero.range.len = kPageSize;
    if (::ioctl(uffd_.get(), UFFDIO_ZEROPAGE, &zero) == 0) return {};
    if (errno == EAGAIN) continue;  // the address space changed under it: try again
    if (errno != EEXIST) return Fail("UFFDIO_ZEROPAGE of page {}: {}", page, std::strerror(errno));
    // Placed meanwhile (the fault was queued before the page came): wake whoever waits.
    uffdio_range range{reinterpret_cast<uint64_t>(host), kPageSize};
    if (::ioctl(uffd_.get(), UFFDIO_WAKE, &range) != 0) {
      return Fail("UFFDIO_WAKE of page {}: {}", page, std::strerror(errno));
    }
    return {};
  }
}

void PostcopyReceiver::FaultLoop() {
  pthread_setname_np(pthread_self(), "vireo-uffd");
  std::vector<uint64_t> wanted;
  for (;;) {
    pollfd fds[2] = {{uffd_.get(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Fatal(fmt::format("polling userfaultfd: {}", std::strerror(errno)));
    }
    if (fds[1].revents != 0) return;
    wanted.clear();
    for (;;) {
      uffd_msg msgs[32];
      const ssize_t n = ::read(uffd_.get(), msgs, sizeof(msgs));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) Fatal(fmt::format("reading userfaultfd: {}", std::strerror(errno)));
      for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(uffd_msg); ++i) {
        if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
        const uint64_t address = msgs[i].arg.pagefault.address;  // a packed field: copied
        const uint64_t page = PageOf(address);
        if (page == ~uint64_t{0}) {
          Fatal(fmt::format("a fault at {:#x}, outside guest RAM", address));
        }
        if (IsMissing(page)) {
          // Ask once; every thread waiting on the page wakes when it is placed.
          const uint64_t bit = uint64_t{1} << (page % 64);
          if ((requested_[page / 64].fetch_or(bit) & bit) == 0) wanted.push_back(page);
        } else if (auto done = ZeroOrWake(page); !done) {
          Fatal(done.error().message);
        }
      }
    }
    for (size_t i = 0; i < wanted.size(); i += kPagesPerBatch) {
      const size_t count = std::min<size_t>(kPagesPerBatch, wanted.size() - i);
      const std::span<const uint64_t> batch(wanted.data() + i, count);
      if (auto sent = Send(EncodeFrame(FrameType::kPageRequest, EncodePageRequest(batch))); !sent) {
        if (stopping_.load()) return;
        Fatal(fmt::format("asking the source for pages: {}", sent.error().message));
      }
      requests_.fetch_add(count);
    }
  }
}

Status PostcopyReceiver::PlacePage(uint64_t page, std::span<const uint8_t> data) {
  if (!IsMissing(page)) {
    return Fail("corrupt migration stream: post-copy sent page {}, which was not missing", page);
  }
  uint8_t* host = HostPage(page);
  for (;;) {
    int rc = 0;
    if (data.empty()) {
      uffdio_zeropage zero{};
      zero.range.start = reinterpret_cast<uint64_t>(host);
      zero.range.len = kPageSize;
      rc = ::ioctl(uffd_.get(), UFFDIO_ZEROPAGE, &zero);
    } else {
      uffdio_copy copy{};
      copy.dst = reinterpret_cast<uint64_t>(host);
      copy.src = reinterpret_cast<uint64_t>(data.data());
      copy.len = kPageSize;
      rc = ::ioctl(uffd_.get(), UFFDIO_COPY, &copy);
    }
    if (rc == 0) break;
    if (errno == EAGAIN) continue;
    // EEXIST would mean something wrote a page that was meant to be missing: a Vireo bug.
    return Fail("placing page {}: {}", page, std::strerror(errno));
  }
  // Cleared only once placed, so a fault that sees the bit clear finds the page there.
  missing_[page / 64].fetch_and(~(uint64_t{1} << (page % 64)));
  left_.fetch_sub(1);
  return {};
}

void PostcopyReceiver::StreamLoop() {
  pthread_setname_np(pthread_self(), "vireo-postcopy");
  for (;;) {
    auto frame = ReadFrame(fd_);
    if (stopping_.load()) return;
    if (!frame) Fatal(fmt::format("the stream broke off: {}", frame.error().message));
    if (frame->type == FrameType::kPages) {
      auto placed = ForEachPage(
          frame->payload, total_pages_,
          [this](uint64_t page, std::span<const uint8_t> data) { return PlacePage(page, data); });
      if (!placed) Fatal(placed.error().message);
      continue;
    }
    if (frame->type != FrameType::kEnd) {
      Fatal(fmt::format("corrupt migration stream: an unexpected frame (type {}) during post-copy",
                        static_cast<uint32_t>(frame->type)));
    }
    if (left_.load() != 0) {
      Fatal(fmt::format("corrupt migration stream: END with {} pages still missing", left_.load()));
    }
    break;
  }
  // Every page is in place: no fault can come for a missing page any more, and the pages
  // never sent (zeros) fault as ordinary anonymous memory once userfaultfd is gone.
  const uint64_t one = 1;
  (void)!::write(stop_event_.get(), &one, sizeof(one));
  fault_thread_.join();
  uffd_.reset();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start_)
                      .count();
  fmt::print(stderr,
             "vireo: post-copy complete: {} pages placed ({} asked for on a fault) in {} ms\n",
             missing_at_start_, requests_.load(), ms);
  std::lock_guard lock(send_mu_);
  complete_ = true;
  if (acknowledged_) SendCompletionLocked();
}

}  // namespace vireo::migration
