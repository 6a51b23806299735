#include "vmm/migration/sender.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <numeric>

#include "base/log.h"
#include "vmm/migration/stream.h"

namespace vireo::migration {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t MillisSince(Clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

bool IsZeroPage(std::span<const uint8_t> page) {
  static const uint8_t kZero[kPageSize] = {};
  return std::memcmp(page.data(), kZero, kPageSize) == 0;
}

// The guest address of page number `page` (RAM offset / 4 KiB, regions in order).
GuestAddress PageAddress(std::span<const GuestMemory::Region> regions, uint64_t page) {
  uint64_t offset = page * kPageSize;
  for (const GuestMemory::Region& region : regions) {
    if (offset < region.range.size) return region.range.base + offset;
    offset -= region.range.size;
  }
  return ~GuestAddress{0};
}

// A PAGES payload of `pages` (at most kPagesPerBatch), zero pages as such.
std::vector<uint8_t> PagesPayload(const GuestMemory& memory, std::span<const uint64_t> pages) {
  std::vector<uint8_t> payload(4);
  for (int i = 0; i < 4; ++i) payload[i] = static_cast<uint8_t>(pages.size() >> (8 * i));
  for (uint64_t page : pages) {
    auto span = memory.Span(PageAddress(memory.regions(), page), kPageSize);
    const bool zero = !span || IsZeroPage(*span);  // page numbers come from RAM's own bitmap
    for (int i = 0; i < 8; ++i) payload.push_back(static_cast<uint8_t>(page >> (8 * i)));
    payload.push_back(static_cast<uint8_t>(zero ? PageKind::kZero : PageKind::kData));
    if (!zero) payload.insert(payload.end(), span->begin(), span->end());
  }
  return payload;
}

}  // namespace

std::vector<uint64_t> DirtyPageList(std::span<const std::vector<uint64_t>> bitmaps,
                                    std::span<const GuestMemory::Region> regions) {
  std::vector<uint64_t> pages;
  uint64_t first = 0;
  for (size_t r = 0; r < regions.size() && r < bitmaps.size(); ++r) {
    const uint64_t count = regions[r].range.size / kPageSize;
    for (size_t w = 0; w < bitmaps[r].size(); ++w) {
      for (uint64_t bits = bitmaps[r][w]; bits != 0; bits &= bits - 1) {
        const uint64_t i = w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
        if (i < count) pages.push_back(first + i);
      }
    }
    first += count;
  }
  return pages;
}

OutgoingMigration::OutgoingMigration(std::unique_ptr<MigrationSource> source,
                                     const MigrationRequest& request)
    : source_(std::move(source)) {
  info_.state = "active";
  info_.phase = "connecting";
  info_.uri = request.uri;
  info_.max_downtime_ms = request.max_downtime_ms;
  info_.bandwidth_limit_mbps = request.bandwidth_mbps;
  info_.block = request.block;
  info_.postcopy_after_rounds = request.postcopy_after_rounds;
}

OutgoingMigration::~OutgoingMigration() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

void OutgoingMigration::Start() {
  start_ = Clock::now();
  thread_ = std::thread([this] { Main(); });
}

void OutgoingMigration::Cancel() {
  cancel_.store(true);
  if (int fd = fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);  // unblocks send/recv
}

MigrationInfo OutgoingMigration::info() const {
  std::lock_guard lock(mu_);
  MigrationInfo copy = info_;
  if (copy.state == "active") copy.total_ms = MillisSince(start_);
  return copy;
}

bool OutgoingMigration::active() const {
  std::lock_guard lock(mu_);
  return info_.state == "active";
}

void OutgoingMigration::Update(const std::function<void(MigrationInfo&)>& change) {
  std::lock_guard lock(mu_);
  change(info_);
}

void OutgoingMigration::Main() {
  pthread_setname_np(pthread_self(), "vireo-migrate");
  Status done = Transfer();
  if (!done) {
    Log(LogLevel::kWarn, "migration to {} failed, {}: {}", info().uri,
        postcopy_committed_ ? "the VM is paused here" : "the VM runs on here",
        done.error().message);
    left_paused_.store(postcopy_committed_);  // before GET can see "failed"
    Update([&](MigrationInfo& i) {
      i.state = "failed";
      i.phase = "";
      i.error = done.error().message;
      i.total_ms = MillisSince(start_);
    });
  }
}

// The destination answers only once, with an ACK frame: early, it is a refusal.
Status OutgoingMigration::CheckDestination() {
  if (cancel_.load()) return Fail("cancelled: the VM is stopping");
  pollfd pfd{fd_.load(), POLLIN, 0};
  if (::poll(&pfd, 1, 0) <= 0) return {};
  auto frame = ReadFrame(pfd.fd);
  if (!frame) return Fail("the destination closed the connection ({})", frame.error().message);
  if (frame->type != FrameType::kAck) return Fail("the destination sent a stray frame");
  auto ack = DecodeAck(frame->payload);
  if (!ack) return Fail("the destination sent a bad ACK: {}", ack.error().message);
  return Fail("the destination refused the migration: {}", ack->message);
}

void OutgoingMigration::Throttle() {
  const uint64_t mbps = info_.bandwidth_limit_mbps;  // set before the thread started
  if (mbps == 0) return;
  const auto due = start_ + std::chrono::microseconds(bytes_sent_ * 8 / mbps);
  if (Clock::now() < due) std::this_thread::sleep_until(due);
}

Status OutgoingMigration::SendPages(std::span<const uint64_t> pages, bool skip_zero) {
  const GuestMemory& memory = source_->memory();
  std::vector<uint8_t> payload;
  payload.reserve(4 + size_t{kPagesPerBatch} * (9 + kPageSize));
  uint32_t count = 0;
  uint64_t sent_pages = 0;
  auto flush = [&]() -> Status {
    if (count == 0) return {};
    for (int i = 0; i < 4; ++i) payload[i] = static_cast<uint8_t>(count >> (8 * i));
    const std::vector<uint8_t> frame = EncodeFrame(FrameType::kPages, payload);
    if (auto sent = SendAll(fd_.load(), frame); !sent) {
      // A destination that gave up says why before closing; prefer its reason.
      VIREO_TRY_STATUS(CheckDestination());
      return Fail("sending pages to the destination: {}", sent.error().message);
    }
    bytes_sent_ += frame.size();
    sent_pages += count;
    Update([&](MigrationInfo& i) {
      i.pages_sent += count;
      i.bytes_sent = bytes_sent_;
    });
    count = 0;
    VIREO_TRY_STATUS(CheckDestination());
    Throttle();
    return {};
  };
  for (uint64_t page : pages) {
    if (count == 0) payload.assign(4, 0);
    auto span = memory.Span(PageAddress(memory.regions(), page), kPageSize);
    if (!span) return Fail("page {} is outside guest memory", page);
    const bool zero = IsZeroPage(*span);
    if (zero && skip_zero) continue;  // the destination's fresh memory is zero already
    for (int i = 0; i < 8; ++i) payload.push_back(static_cast<uint8_t>(page >> (8 * i)));
    payload.push_back(static_cast<uint8_t>(zero ? PageKind::kZero : PageKind::kData));
    if (!zero) payload.insert(payload.end(), span->begin(), span->end());
    if (++count == kPagesPerBatch) VIREO_TRY_STATUS(flush());
  }
  VIREO_TRY_STATUS(flush());
  (void)sent_pages;
  return {};
}

Status OutgoingMigration::SendFrame(std::span<const uint8_t> frame, const char* what) {
  if (auto sent = SendAll(fd_.load(), frame); !sent) {
    VIREO_TRY_STATUS(CheckDestination());  // a destination that gave up says why first
    return Fail("sending {} to the destination: {}", what, sent.error().message);
  }
  bytes_sent_ += frame.size();
  return {};
}

Status OutgoingMigration::SendDiskChunks(uint32_t disk, std::span<const uint64_t> chunks) {
  static const std::vector<uint8_t> kZeroChunk(kDiskChunkSize, 0);
  DiskSource& source = *disks_[disk];
  std::vector<uint8_t> buffer(kDiskChunkSize);
  for (uint64_t chunk : chunks) {
    const uint64_t length = source.dirty().ChunkLength(chunk);
    if (length == 0) continue;
    const uint64_t offset = chunk * kDiskChunkSize;
    std::span<uint8_t> data(buffer.data(), length);
    if (auto read = source.Read(offset, data); !read) {
      return Wrap(fmt::format("reading disk {} at offset {}", disk, offset), read.error());
    }
    // A zero chunk goes as a 17-byte record (the destination writes zeros).
    const bool zero = std::memcmp(data.data(), kZeroChunk.data(), length) == 0;
    const std::vector<uint8_t> frame =
        EncodeFrame(FrameType::kDiskChunk,
                    EncodeDiskChunk(disk, offset, zero ? std::span<const uint8_t>() : data,
                                    static_cast<uint32_t>(length)));
    VIREO_TRY_STATUS(SendFrame(frame, "disk contents"));
    Update([&](MigrationInfo& i) {
      i.disk_bytes_sent += length;
      i.disk_bytes_remaining -= std::min(i.disk_bytes_remaining, length);
      i.bytes_sent = bytes_sent_;
    });
    VIREO_TRY_STATUS(CheckDestination());
    Throttle();
  }
  return {};
}

Status OutgoingMigration::SendDirtyChunks() {
  for (uint32_t d = 0; d < disks_.size(); ++d) {
    const std::vector<uint64_t> chunks = disks_[d]->dirty().Take();
    VIREO_TRY_STATUS(SendDiskChunks(d, chunks));
  }
  return {};
}

uint64_t OutgoingMigration::DirtyDiskBytes() const {
  uint64_t bytes = 0;
  for (const auto& disk : disks_) bytes += disk->dirty().CountDirty() * kDiskChunkSize;
  return bytes;
}

Status OutgoingMigration::Transfer() {
  const MigrationInfo request = info();
  const TcpAddress address = VIREO_TRY(ParseUri(request.uri));
  UniqueFd fd = VIREO_TRY(Connect(address, kIoTimeoutMs));
  fd_.store(fd.get());
  struct Forget {  // Cancel must not shut down a closed (maybe reused) fd number
    std::atomic<int>& fd;
    ~Forget() { fd.store(-1); }
  } forget{fd_};
  if (cancel_.load()) return Fail("cancelled: the VM is stopping");

  const GuestMemory& memory = source_->memory();
  std::vector<RamRange> ram;
  for (const GuestMemory::Region& region : memory.regions()) ram.push_back(region.range);
  std::vector<uint8_t> opening = EncodePreamble();
  const std::vector<uint8_t> hello = EncodeFrame(FrameType::kHello, EncodeHello(ram));
  opening.insert(opening.end(), hello.begin(), hello.end());
  if (auto sent = SendAll(fd.get(), opening); !sent) {
    return Fail("sending the stream header: {}", sent.error().message);
  }
  bytes_sent_ += opening.size();

  // Block migration: the disk list, then every chunk of every disk, with writes tracked from
  // just before the copy starts; the rounds below re-send what the guest writes meanwhile.
  struct ForgetDisks {
    std::vector<std::unique_ptr<DiskSource>>& disks;
    ~ForgetDisks() {
      for (auto& disk : disks) disk->dirty().Stop();
      disks.clear();
    }
  } forget_disks{disks_};
  if (request.block) {
    disks_ = VIREO_TRY(source_->OpenDisks());
    std::vector<uint64_t> sizes;
    for (const auto& disk : disks_) sizes.push_back(disk->dirty().disk_size());
    const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
    VIREO_TRY_STATUS(
        SendFrame(EncodeFrame(FrameType::kDisks, EncodeDisks(sizes)), "the disk list"));
    Update([&](MigrationInfo& i) {
      i.phase = "block copy";
      i.disk_bytes_total = total;
      i.disk_bytes_remaining = total;
    });
    for (auto& disk : disks_) disk->dirty().Start();
    for (uint32_t d = 0; d < disks_.size(); ++d) {
      std::vector<uint64_t> all(disks_[d]->dirty().chunk_count());
      std::iota(all.begin(), all.end(), uint64_t{0});
      VIREO_TRY_STATUS(SendDiskChunks(d, all));
    }
  }

  // Round 1 sends all of RAM; the dirty log, cleared just before, collects what the guest
  // writes meanwhile.
  if (auto started = source_->StartDirtyLog(); !started) {
    return Wrap("starting the dirty-page log", started.error());
  }
  VIREO_TRY(source_->FetchDirtyPages());
  std::vector<uint64_t> pages(memory.total_size() / kPageSize);
  for (uint64_t i = 0; i < pages.size(); ++i) pages[i] = i;
  Update([](MigrationInfo& i) { i.phase = "pre-copy"; });
  bool first = true;
  bool postcopy = false;
  const uint64_t max_downtime_ms = request.max_downtime_ms;
  for (int round = 1;; ++round) {
    const auto round_start = Clock::now();
    const uint64_t bytes_before = bytes_sent_;
    Update([&](MigrationInfo& i) {
      i.rounds = static_cast<uint64_t>(round);
      i.remaining_pages = pages.size();
    });
    VIREO_TRY_STATUS(SendPages(pages, first));
    VIREO_TRY_STATUS(SendDirtyChunks());
    first = false;
    const double seconds =
        std::max(1e-4, std::chrono::duration<double>(Clock::now() - round_start).count());
    pages = DirtyPageList(VIREO_TRY(source_->FetchDirtyPages()), memory.regions());
    // Bytes per second on the wire this round; a round too small to measure counts as fast.
    const double rate =
        (bytes_sent_ - bytes_before) < (1u << 20)
            ? std::max(1e9, static_cast<double>(bytes_sent_ - bytes_before) / seconds)
            : static_cast<double>(bytes_sent_ - bytes_before) / seconds;
    const uint64_t dirty_disk = DirtyDiskBytes();
    const double expected_ms =
        (static_cast<double>(pages.size()) * (kPageSize + 9) + static_cast<double>(dirty_disk)) *
        1000.0 / rate;
    Update([&](MigrationInfo& i) {
      i.disk_bytes_remaining = dirty_disk;
      i.remaining_pages = pages.size();
      i.dirty_pages_per_second = static_cast<uint64_t>(static_cast<double>(pages.size()) / seconds);
      i.measured_mbps = static_cast<uint64_t>(rate * 8 / 1e6);
      i.expected_downtime_ms = static_cast<uint64_t>(expected_ms);
    });
    if (expected_ms <= static_cast<double>(max_downtime_ms)) break;
    if (request.postcopy_after_rounds != 0 &&
        static_cast<uint64_t>(round) >= request.postcopy_after_rounds) {
      postcopy = true;  // not converging: the destination takes the rest on demand
      break;
    }
    if (round >= kMaxRounds) break;
  }

  // Stop-and-copy: the pages dirtied since the last fetch, those still pending, the state.
  Update([](MigrationInfo& i) { i.phase = "stop-and-copy"; });
  const auto pause_start = Clock::now();
  if (auto paused = source_->Pause(); !paused) return Wrap("pausing the VM", paused.error());
  struct ResumeOnFailure {
    MigrationSource& source;
    bool armed = true;
    ~ResumeOnFailure() {
      if (armed) source.Resume();
    }
  } resume{*source_};
  std::vector<uint64_t> last =
      DirtyPageList(VIREO_TRY(source_->FetchDirtyPages()), memory.regions());
  std::vector<bool> seen(memory.total_size() / kPageSize, false);
  for (uint64_t p : pages) seen[p] = true;
  for (uint64_t p : last) {
    if (!seen[p]) pages.push_back(p);
  }
  Update([&](MigrationInfo& i) {
    i.remaining_pages = pages.size();
    i.disk_bytes_remaining = DirtyDiskBytes();
  });
  // The pause drained in-flight disk I/O, so these are the disks' last writes.
  VIREO_TRY_STATUS(SendDirtyChunks());
  if (!postcopy) VIREO_TRY_STATUS(SendPages(pages, false));
  const std::vector<uint8_t> state = VIREO_TRY(source_->SaveState());
  std::vector<uint8_t> tail = EncodeFrame(FrameType::kState, state);
  // Post-copy: instead of the pages, the list of them; they follow while the guest runs there.
  const std::vector<uint8_t> end =
      postcopy ? EncodeFrame(FrameType::kPostcopy,
                             EncodePostcopy(pages, memory.total_size() / kPageSize))
               : EncodeFrame(FrameType::kEnd, {});
  tail.insert(tail.end(), end.begin(), end.end());
  if (auto sent = SendAll(fd.get(), tail); !sent) {
    VIREO_TRY_STATUS(CheckDestination());
    return Fail("sending the VM state: {}", sent.error().message);
  }
  bytes_sent_ += tail.size();
  Update([&](MigrationInfo& i) {
    i.phase = "waiting for the destination";  // "post-copy" once it runs the guest
    i.remaining_pages = postcopy ? pages.size() : 0;
    i.disk_bytes_remaining = 0;
    i.bytes_sent = bytes_sent_;
    i.postcopy_switched = postcopy;
    i.postcopy_pages = postcopy ? pages.size() : 0;
  });
  if (postcopy) {
    VIREO_TRY_STATUS(PostCopy(pages, pause_start, resume.armed));
    return Finished();
  }

  auto frame = ReadFrame(fd.get());
  if (!frame) {
    return Fail("no acknowledgement from the destination ({}); the VM runs on here",
                frame.error().message);
  }
  if (frame->type != FrameType::kAck) return Fail("the destination sent a stray frame");
  const Ack ack = VIREO_TRY(DecodeAck(frame->payload));
  if (ack.status != 0) return Fail("the destination refused the migration: {}", ack.message);

  resume.armed = false;  // the destination runs the guest now
  const uint64_t downtime = MillisSince(pause_start);
  Update([&](MigrationInfo& i) { i.downtime_ms = downtime; });
  return Finished();
}

Status OutgoingMigration::Finished() {
  MigrationInfo final_info;
  Update([&](MigrationInfo& i) {
    i.state = "completed";
    i.phase = "";
    i.total_ms = MillisSince(start_);
    final_info = i;
  });
  source_->Finish(fmt::format(
      "migrated to {}: {} rounds, {} pages ({} MiB) sent, last dirty rate {} pages/s, downtime "
      "{} ms, total {} ms{}{}",
      final_info.uri, final_info.rounds, final_info.pages_sent, final_info.bytes_sent >> 20,
      final_info.dirty_pages_per_second, final_info.downtime_ms, final_info.total_ms,
      final_info.block
          ? fmt::format("; block: {} KiB of disk sent for {} KiB of disks",
                        final_info.disk_bytes_sent >> 10, final_info.disk_bytes_total >> 10)
          : "",
      final_info.postcopy_switched
          ? fmt::format("; post-copy: {} pages, {} requested by the destination, {} ms",
                        final_info.postcopy_pages, final_info.postcopy_requests,
                        final_info.postcopy_ms)
          : ""));
  return {};
}

// After the switch: the missing pages, those the destination faulted on first, with the rest
// in the background, then END; the destination's first ACK(0) says it runs the guest (the point
// of no return: `resume_armed` goes false), its second that every page is in place.
Status OutgoingMigration::PostCopy(std::span<const uint64_t> missing,
                                   std::chrono::steady_clock::time_point pause_start,
                                   bool& resume_armed) {
  const int fd = fd_.load();
  const GuestMemory& memory = source_->memory();
  const uint64_t total_pages = memory.total_size() / kPageSize;
  const auto switch_time = Clock::now();
  std::vector<bool> unsent(total_pages, false);
  for (uint64_t p : missing) unsent[p] = true;
  std::deque<uint64_t> urgent;
  size_t next = 0;  // the background cursor into `missing`
  uint64_t left = missing.size();
  bool end_sent = false;
  // Small background batches, so a requested page waits behind at most 64 KiB.
  constexpr size_t kBackgroundBatch = 16;
  auto send = [&](std::span<const uint64_t> pages) -> Status {
    for (uint64_t p : pages) unsent[p] = false;
    left -= pages.size();
    const std::vector<uint8_t> frame = EncodeFrame(FrameType::kPages, PagesPayload(memory, pages));
    VIREO_TRY_STATUS(SendAll(fd, frame));
    bytes_sent_ += frame.size();
    Update([&](MigrationInfo& i) {
      i.pages_sent += pages.size();
      i.postcopy_pages_sent += pages.size();
      i.remaining_pages = left;
      i.bytes_sent = bytes_sent_;
      i.postcopy_ms = MillisSince(switch_time);
    });
    return {};
  };
  auto fail = [&](const std::string& why) -> Status {
    if (resume_armed) return Fail("{}", why);  // before the switch took: the source resumes
    return Fail(
        "post-copy failed after the destination took over the guest: {}. The destination cannot "
        "run without the pages it lacks and stops; the VM is paused here with all of its memory "
        "as of the switch: PUT /vm/resume runs it here again (what the guest did on the "
        "destination is lost, except writes it made to shared disks), PUT /vm/stop ends it",
        why);
  };
  for (;;) {
    if (cancel_.load()) return fail("cancelled: the VM is stopping");
    const bool work = !urgent.empty() || next < missing.size() || !end_sent;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, work ? 0 : kIoTimeoutMs);
    if (ready < 0 && errno != EINTR) return fail(fmt::format("poll: {}", std::strerror(errno)));
    if (ready == 0 && !work) return fail("the destination went quiet for 30 s");
    if (ready > 0) {
      auto frame = ReadFrame(fd);
      if (!frame) {
        return fail(
            fmt::format("the destination closed the connection ({})", frame.error().message));
      }
      if (frame->type == FrameType::kPageRequest) {
        auto pages = DecodePageRequest(frame->payload, total_pages);
        if (!pages) return fail(fmt::format("the destination sent {}", pages.error().message));
        for (uint64_t p : *pages) {
          if (unsent[p]) urgent.push_back(p);
        }
        Update([&](MigrationInfo& i) { i.postcopy_requests += pages->size(); });
        continue;
      }
      if (frame->type != FrameType::kAck) return fail("the destination sent a stray frame");
      auto ack = DecodeAck(frame->payload);
      if (!ack) return fail(fmt::format("the destination sent a bad ACK: {}", ack.error().message));
      if (ack->status != 0) {
        return fail(resume_armed ? "the destination refused the migration: " + ack->message
                                 : "the destination gave up: " + ack->message);
      }
      if (resume_armed) {
        resume_armed = false;  // the guest runs there now
        postcopy_committed_ = true;
        const uint64_t downtime = MillisSince(pause_start);
        Update([&](MigrationInfo& i) {
          i.downtime_ms = downtime;
          i.phase = "post-copy";
        });
        continue;
      }
      if (!end_sent) return fail("the destination said it had every page before END");
      Update([&](MigrationInfo& i) { i.postcopy_ms = MillisSince(switch_time); });
      return {};
    }
    // Pages the destination faulted on first, then the background stream (capped).
    std::vector<uint64_t> batch;
    while (!urgent.empty() && batch.size() < kBackgroundBatch) {
      if (unsent[urgent.front()]) batch.push_back(urgent.front());
      urgent.pop_front();
    }
    if (!batch.empty()) {
      if (auto sent = send(batch); !sent) return fail(sent.error().message);
      continue;
    }
    while (next < missing.size() && batch.size() < kBackgroundBatch) {
      if (unsent[missing[next]]) batch.push_back(missing[next]);
      ++next;
    }
    if (!batch.empty()) {
      if (auto sent = send(batch); !sent) return fail(sent.error().message);
      Throttle();
      continue;
    }
    if (!end_sent && left == 0) {
      const std::vector<uint8_t> end = EncodeFrame(FrameType::kEnd, {});
      if (auto sent = SendAll(fd, end); !sent) return fail(sent.error().message);
      bytes_sent_ += end.size();
      end_sent = true;
    }
  }
}

}  // namespace vireo::migration
