#include "block/raw_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "block/image_file.h"

namespace vireo::block {
namespace {

constexpr size_t kZeroBufferSize = 64 * 1024;

const char* CacheName(CacheMode cache) {
  return cache == CacheMode::kNone ? "none (O_DIRECT)" : "writeback";
}

// The alignment O_DIRECT needs here: the device's logical block size for a block device; for a
// file, 512 unless a 512-byte direct read is refused.
uint32_t DirectIoAlignment(int fd, bool is_block_device) {
  if (is_block_device) {
    int sector = 0;
    if (::ioctl(fd, BLKSSZGET, &sector) == 0 && sector > 0) return static_cast<uint32_t>(sector);
    return 512;
  }
  void* buffer = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffer == MAP_FAILED) return 4096;
  Mapping mapping(buffer, 4096);
  ssize_t rc = ::pread(fd, buffer, 512, 0);
  return (rc < 0 && errno == EINVAL) ? 4096 : 512;
}

}  // namespace

Result<std::unique_ptr<RawFile>> RawFile::Open(const std::string& path, const RawOptions& options) {
  if (options.queue_depth == 0 || options.queue_depth > kMaxQueueDepth) {
    return Fail("disk image '{}': queue depth {} is out of range (1 to {})", path,
                options.queue_depth, kMaxQueueDepth);
  }
  const bool direct = options.cache == CacheMode::kNone;
  ImageFile file = VIREO_TRY(OpenImageFile(path, {options.read_only, direct, options.lock}));
  UniqueFd fd = std::move(file.fd);
  const uint64_t size = file.size;

  uint32_t alignment = direct ? DirectIoAlignment(fd.get(), file.is_block_device) : 1;
  EventFd event = VIREO_TRY(EventFd::Create());
  void* zeros = ::mmap(nullptr, kZeroBufferSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (zeros == MAP_FAILED) return Fail("disk image '{}': mmap: {}", path, strerror(errno));
  Mapping zero_buffer(zeros, kZeroBufferSize);

  std::unique_ptr<IoEngine> engine;
  if (options.engine != EngineKind::kThreads) {
    auto uring = CreateUringEngine(fd.get(), options.queue_depth, event.fd());
    if (uring) {
      engine = std::move(*uring);
    } else if (options.engine == EngineKind::kIoUring) {
      return Fail("disk image '{}': io_uring is unavailable: {}", path, uring.error().message);
    } else {
      Log(LogLevel::kWarn, "disk image '{}': io_uring is unavailable ({}); using {} worker threads",
          path, uring.error().message, options.worker_threads);
    }
  }
  if (!engine) {
    engine = VIREO_TRY(
        CreateThreadEngine(fd.get(), options.queue_depth, event.fd(), options.worker_threads));
  }
  Log(LogLevel::kInfo, "disk image '{}': {} bytes, {}, cache {}, discard {}, I/O on {}", path, size,
      options.read_only ? "read-only" : "read-write", CacheName(options.cache),
      options.discard ? "on" : "off", engine->name());
  return std::unique_ptr<RawFile>(new RawFile(path, options, std::move(fd), size, alignment,
                                              std::move(event), std::move(zero_buffer),
                                              std::move(engine)));
}

RawFile::RawFile(std::string path, const RawOptions& options, UniqueFd fd, uint64_t size,
                 uint32_t alignment, EventFd event, Mapping zero_buffer,
                 std::unique_ptr<IoEngine> engine)
    : path_(std::move(path)),
      options_(options),
      fd_(std::move(fd)),
      size_(size),
      alignment_(alignment),
      event_(std::move(event)),
      zero_buffer_(std::move(zero_buffer)),
      slots_(options.queue_depth),
      engine_(std::move(engine)) {
  if (options.write_zeroes_by_writing) zero_method_ = ZeroMethod::kWriteBuffers;
  free_.reserve(options.queue_depth);
  immediate_.reserve(options.queue_depth);
  for (uint32_t tag = options.queue_depth; tag > 0; --tag) free_.push_back(tag - 1);
}

RawFile::~RawFile() { engine_.reset(); }

size_t RawFile::SubmitBatch(std::span<const BlockRequest> requests) {
  size_t accepted = 0;
  for (const BlockRequest& request : requests) {
    if (free_.empty()) break;
    uint32_t tag = free_.back();
    free_.pop_back();
    slots_[tag].cookie = request.cookie;
    slots_[tag].op = request.op;
    if (auto result = Start(tag, request)) {
      slots_[tag].immediate_result = *result;
      if (immediate_.empty()) event_.Signal();
      immediate_.push_back(tag);  // Never reallocates: at most queue_depth slots exist.
    }
    ++accepted;
  }
  engine_->Kick();
  return accepted;
}

std::optional<int32_t> RawFile::Start(uint32_t tag, const BlockRequest& request) {
  Slot& slot = slots_[tag];
  using Op = BlockRequest::Op;
  const int64_t checked = CheckRequest(request, size_, options_.read_only);
  if (checked < 0) return static_cast<int32_t>(checked);
  const auto length = static_cast<uint64_t>(checked);
  slot.offset = request.offset;
  slot.remaining = length;
  slot.total = length;

  switch (request.op) {
    case Op::kRead:
    case Op::kWrite:
      if (length == 0) return 0;
      std::copy(request.iov.begin(), request.iov.end(), slot.iov.begin());
      slot.iov_first = 0;
      slot.iov_count = static_cast<unsigned>(request.iov.size());
      QueueTransfer(tag);
      return std::nullopt;
    case Op::kFlush:
      if (options_.read_only) return 0;
      engine_->Queue(tag, IoStep{.kind = IoStep::Kind::kFdatasync});
      return std::nullopt;
    case Op::kDiscard:
      if (!options_.discard) return -EOPNOTSUPP;
      if (length == 0 || !discard_works_) return 0;
      engine_->Queue(tag, IoStep{.kind = IoStep::Kind::kFallocate,
                                 .fallocate_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 .offset = slot.offset,
                                 .length = length});
      return std::nullopt;
    case Op::kWriteZeroes:
      if (length == 0) return 0;
      slot.zero_method = zero_method_;
      QueueZeroStep(tag);
      return std::nullopt;
  }
  return -EOPNOTSUPP;  // An Op value outside the enum.
}

void RawFile::QueueTransfer(uint32_t tag) {
  Slot& slot = slots_[tag];
  engine_->Queue(tag, IoStep{.kind = slot.op == BlockRequest::Op::kRead ? IoStep::Kind::kReadv
                                                                        : IoStep::Kind::kWritev,
                             .offset = slot.offset,
                             .iov = slot.iov.data() + slot.iov_first,
                             .iov_count = slot.iov_count});
}

void RawFile::QueueZeroStep(uint32_t tag) {
  Slot& slot = slots_[tag];
  switch (slot.zero_method) {
    case ZeroMethod::kZeroRange:
    case ZeroMethod::kPunchHole: {
      int mode =
          slot.zero_method == ZeroMethod::kZeroRange ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE;
      engine_->Queue(tag, IoStep{.kind = IoStep::Kind::kFallocate,
                                 .fallocate_mode = mode | FALLOC_FL_KEEP_SIZE,
                                 .offset = slot.offset,
                                 .length = slot.remaining});
      return;
    }
    case ZeroMethod::kWriteBuffers: {
      // Every iovec points at the same read-only zero buffer.
      unsigned count = 0;
      for (uint64_t left = slot.remaining; left > 0 && count < kMaxSegments; ++count) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, kZeroBufferSize));
        slot.iov[count] = iovec{zero_buffer_.get(), chunk};
        left -= chunk;
      }
      slot.iov_first = 0;
      slot.iov_count = count;
      engine_->Queue(tag, IoStep{.kind = IoStep::Kind::kWritev,
                                 .offset = slot.offset,
                                 .iov = slot.iov.data(),
                                 .iov_count = count});
      return;
    }
  }
}

void RawFile::OnStepDone(uint32_t tag, int32_t result) {
  Slot& slot = slots_[tag];
  using Op = BlockRequest::Op;
  switch (slot.op) {
    case Op::kRead:
    case Op::kWrite: {
      if (result < 0) return Finish(tag, result);
      if (result == 0 || static_cast<uint64_t>(result) > slot.remaining) {
        if (slot.op == Op::kWrite || result != 0) return Finish(tag, -EIO);
        return FinishReadAtEof(tag);
      }
      // A short transfer: step past what was done and go on.
      slot.offset += static_cast<uint64_t>(result);
      slot.remaining -= static_cast<uint64_t>(result);
      if (slot.remaining == 0) return Finish(tag, static_cast<int32_t>(slot.total));
      size_t done = static_cast<size_t>(result);
      while (done > 0 && done >= slot.iov[slot.iov_first].iov_len) {
        done -= slot.iov[slot.iov_first].iov_len;
        ++slot.iov_first;
        --slot.iov_count;
      }
      iovec& first = slot.iov[slot.iov_first];
      first.iov_base = static_cast<uint8_t*>(first.iov_base) + done;
      first.iov_len -= done;
      // Past the end there is nothing to read (and O_DIRECT would refuse the unaligned offset).
      if (slot.op == Op::kRead && slot.offset >= size_) return FinishReadAtEof(tag);
      return QueueTransfer(tag);
    }
    case Op::kFlush:
      return Finish(tag, std::min(result, 0));
    case Op::kDiscard:
      if (result == -EOPNOTSUPP) {
        // Discard is a hint: where the host cannot punch holes, it does nothing.
        Log(LogLevel::kInfo, "disk image '{}': the host cannot punch holes; discard is a no-op",
            path_);
        discard_works_ = false;
        return Finish(tag, 0);
      }
      return Finish(tag, std::min(result, 0));
    case Op::kWriteZeroes:
      if (slot.zero_method == ZeroMethod::kWriteBuffers) {
        if (result < 0) return Finish(tag, result);
        if (result == 0) return Finish(tag, -EIO);
        uint64_t done = std::min<uint64_t>(static_cast<uint64_t>(result), slot.remaining);
        slot.offset += done;
        slot.remaining -= done;
        if (slot.remaining == 0) return Finish(tag, 0);
        return QueueZeroStep(tag);
      }
      if (result == -EOPNOTSUPP) {
        auto next = static_cast<ZeroMethod>(static_cast<uint8_t>(slot.zero_method) + 1);
        if (next > zero_method_) {
          Log(LogLevel::kInfo, "disk image '{}': the host refused {}; write-zeroes now {}", path_,
              slot.zero_method == ZeroMethod::kZeroRange ? "FALLOC_FL_ZERO_RANGE"
                                                         : "FALLOC_FL_PUNCH_HOLE",
              next == ZeroMethod::kPunchHole ? "punches holes" : "writes zeros");
          zero_method_ = next;
        }
        slot.zero_method = next;
        return QueueZeroStep(tag);
      }
      return Finish(tag, std::min(result, 0));
  }
}

void RawFile::FinishReadAtEof(uint32_t tag) {
  // The rest of the read lies past the end of the file: the zero tail of the last sector.
  Slot& slot = slots_[tag];
  for (unsigned i = 0; i < slot.iov_count; ++i) {
    std::memset(slot.iov[slot.iov_first + i].iov_base, 0, slot.iov[slot.iov_first + i].iov_len);
  }
  Finish(tag, static_cast<int32_t>(slot.total));
}

void RawFile::Finish(uint32_t tag, int32_t result) {
  void* cookie = slots_[tag].cookie;
  free_.push_back(tag);  // Free first: the handler may submit into this slot.
  if (handler_) handler_(cookie, result);
}

void RawFile::ProcessCompletions() {
  event_.Drain();
  // Bounded: enough batches for every slot once, then come back through the eventfd.
  const size_t max_batches = options_.queue_depth / kReapBatch + 1;
  size_t batches = 0;
  for (; batches < max_batches; ++batches) {
    size_t n = engine_->Reap(reaped_);
    for (size_t i = 0; i < n; ++i) OnStepDone(reaped_[i].tag, reaped_[i].result);
    if (n < reaped_.size()) break;
  }
  // Requests answered without I/O, including ones handlers submitted just now (next time).
  const size_t ready = immediate_.size();
  for (size_t i = 0; i < ready; ++i) Finish(immediate_[i], slots_[immediate_[i]].immediate_result);
  immediate_.erase(immediate_.begin(), immediate_.begin() + static_cast<ptrdiff_t>(ready));
  if (batches == max_batches || !immediate_.empty()) event_.Signal();
  engine_->Kick();  // Continuations of short transfers and write-zeroes fallbacks.
}

}  // namespace vireo::block
