#include "block/image_backend.h"

#include <errno.h>

#include "base/log.h"

namespace vireo::block {

Result<std::unique_ptr<ImageBackend>> ImageBackend::Create(std::unique_ptr<Image> image,
                                                           const ImageBackendOptions& options) {
  if (options.queue_depth == 0 || options.queue_depth > 4096 || options.workers == 0) {
    return Fail("image backend: queue depth {} / {} workers is out of range", options.queue_depth,
                options.workers);
  }
  EventFd event = VIREO_TRY(EventFd::Create());
  return std::unique_ptr<ImageBackend>(
      new ImageBackend(std::move(image), options, std::move(event)));
}

ImageBackend::ImageBackend(std::unique_ptr<Image> image, const ImageBackendOptions& options,
                           EventFd event)
    : image_(std::move(image)),
      options_(options),
      event_(std::move(event)),
      slots_(options.queue_depth) {
  free_.reserve(options.queue_depth);
  pending_.reserve(options.queue_depth);
  done_.reserve(options.queue_depth);
  reaped_.reserve(options.queue_depth);
  for (uint32_t tag = options.queue_depth; tag > 0; --tag) free_.push_back(tag - 1);
  for (unsigned i = 0; i < options.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ImageBackend::~ImageBackend() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

size_t ImageBackend::SubmitBatch(std::span<const BlockRequest> requests) {
  size_t accepted = 0;
  {
    std::lock_guard lock(mutex_);
    for (const BlockRequest& request : requests) {
      if (free_.empty()) break;
      uint32_t tag = free_.back();
      free_.pop_back();
      Slot& slot = slots_[tag];
      slot.request = request;
      if (request.iov.size() <= kMaxSegments) {
        std::copy(request.iov.begin(), request.iov.end(), slot.iov.begin());
        slot.request.iov = std::span<const iovec>(slot.iov.data(), request.iov.size());
      } else {
        slot.request.iov = request.iov;  // Rejected by Execute before it is used.
      }
      if (pending_head_ > 0 && pending_head_ == pending_.size()) {
        pending_.clear();
        pending_head_ = 0;
      }
      pending_.push_back(tag);  // Never reallocates: at most queue_depth tags are pending.
      ++accepted;
    }
  }
  if (accepted == 1) {
    wake_.notify_one();
  } else if (accepted > 1) {
    wake_.notify_all();
  }
  return accepted;
}

void ImageBackend::WorkerLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || pending_head_ < pending_.size(); });
    if (stopping_) return;
    uint32_t tag = pending_[pending_head_++];
    lock.unlock();
    slots_[tag].result = Execute(slots_[tag]);
    lock.lock();
    bool was_empty = done_.empty();
    done_.push_back(tag);
    if (was_empty) event_.Signal();
  }
}

int32_t ImageBackend::Execute(Slot& slot) {
  const BlockRequest& request = slot.request;
  using Op = BlockRequest::Op;
  const uint64_t size = image_->size();
  const int64_t checked = CheckRequest(request, size, read_only());
  if (checked < 0) return static_cast<int32_t>(checked);
  if (request.op == Op::kDiscard && !supports_discard()) return -EOPNOTSUPP;
  const auto length = static_cast<uint64_t>(checked);

  IoStatus status;
  switch (request.op) {
    case Op::kRead: {
      uint64_t offset = request.offset;
      for (const iovec& v : request.iov) {
        auto* base = static_cast<uint8_t*>(v.iov_base);
        // The tail of the last sector past the disk's end reads as zeros.
        uint64_t inside = offset >= size ? 0 : std::min<uint64_t>(v.iov_len, size - offset);
        if (inside > 0) status = image_->Read(offset, std::span<uint8_t>(base, inside));
        if (!status) break;
        std::fill(base + inside, base + v.iov_len, 0);
        offset += v.iov_len;
      }
      break;
    }
    case Op::kWrite: {
      uint64_t offset = request.offset;
      for (const iovec& v : request.iov) {
        status = image_->Write(
            offset, std::span<const uint8_t>(static_cast<const uint8_t*>(v.iov_base), v.iov_len));
        if (!status) break;
        offset += v.iov_len;
      }
      break;
    }
    case Op::kFlush:
      status = image_->Flush();
      break;
    case Op::kDiscard:
      status = image_->Discard(request.offset, request.length);
      break;
    case Op::kWriteZeroes:
      status = image_->WriteZeroes(request.offset, request.length);
      break;
  }
  if (!status) {
    Log(LogLevel::kWarn, "disk I/O failed: {}", status.error().message);
    return -status.error().err;
  }
  return (request.op == Op::kRead || request.op == Op::kWrite) ? static_cast<int32_t>(length) : 0;
}

void ImageBackend::ProcessCompletions() {
  event_.Drain();
  {
    std::lock_guard lock(mutex_);
    reaped_.swap(done_);
  }
  for (uint32_t tag : reaped_) {
    void* cookie = slots_[tag].request.cookie;
    int32_t result = slots_[tag].result;
    free_.push_back(tag);
    if (handler_) handler_(cookie, result);
  }
  reaped_.clear();
}

}  // namespace vireo::block
