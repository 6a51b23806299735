#include "virtio/blk.h"

#include <poll.h>

#include <algorithm>

#include "base/bytes.h"
#include "base/log.h"
#include "virtio/descriptor_io.h"

namespace vireo::virtio {
namespace {

bool OffersDiscard(const block::BlockBackend& backend, const BlkOptions& options) {
  return options.discard && !backend.read_only() && backend.supports_discard();
}
bool OffersWriteZeroes(const block::BlockBackend& backend, const BlkOptions& options) {
  return options.discard && !backend.read_only() && backend.supports_write_zeroes();
}

uint64_t Features(const block::BlockBackend& backend, const BlkOptions& options) {
  uint64_t features = kBlkFSegMax | kBlkFBlkSize | kBlkFFlush;
  if (backend.read_only()) features |= kBlkFRo;
  if (OffersDiscard(backend, options)) features |= kBlkFDiscard;
  if (OffersWriteZeroes(backend, options)) features |= kBlkFWriteZeroes;
  return features;
}

}  // namespace

Result<std::unique_ptr<Blk>> Blk::Create(std::unique_ptr<block::BlockBackend> backend,
                                         BlkOptions options, EventLoop& loop) {
  if (!backend) return Fail("virtio-blk: no backend");
  if (options.serial.size() > kBlkIdBytes) {
    return Fail("virtio-blk: serial '{}' is {} bytes; at most {} fit in a GET_ID reply",
                options.serial, options.serial.size(), kBlkIdBytes);
  }
  auto notify = EventFd::Create();
  if (!notify) return Wrap("virtio-blk: creating the notify eventfd", notify.error());
  return std::unique_ptr<Blk>(
      new Blk(std::move(backend), std::move(options), loop, std::move(*notify)));
}

Blk::Blk(std::unique_ptr<block::BlockBackend> backend, BlkOptions options, EventLoop& loop,
         EventFd notify)
    : backend_(std::move(backend)),
      options_(std::move(options)),
      loop_(loop),
      notify_(std::move(notify)),
      features_(Features(*backend_, options_)),
      dirty_(backend_->size()),
      chain_(kQueueSize + kMaxIndirectEntries),
      slots_(kQueueSize),
      pending_(kQueueSize) {
  // 5.2.4: capacity in 512-byte sectors, rounded down (backend.h's end-of-disk rule).
  config_.capacity = backend_->size() / kBlkSectorSize;
  config_.seg_max = kSegMax;
  config_.blk_size = std::max<uint32_t>(kBlkSectorSize, backend_->alignment());
  config_.num_queues = 1;
  if (OffersDiscard(*backend_, options_)) {
    config_.max_discard_sectors = kMaxDwzSectors;
    config_.max_discard_seg = kBlkMaxDwzSegments;
    config_.discard_sector_alignment = kDiscardSectorAlignment;
    config_.write_zeroes_may_unmap = 1;
  }
  if (OffersWriteZeroes(*backend_, options_)) {
    config_.max_write_zeroes_sectors = kMaxDwzSectors;
    config_.max_write_zeroes_seg = kBlkMaxDwzSegments;
  }
  std::copy(options_.serial.begin(), options_.serial.end(), id_.begin());  // zero padded
  free_.reserve(kQueueSize);
  for (size_t i = kQueueSize; i > 0; --i) free_.push_back(static_cast<uint16_t>(i - 1));
  backend_->SetCompletionHandler(
      [this](void* cookie, int32_t result) { OnBackendDone(cookie, result); });
}

Blk::~Blk() { Reset(); }

bool Blk::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  return ReadConfigBytes(AsBytes(config_), offset, data);  // immutable: no lock
}

bool Blk::WriteConfig(uint64_t, std::span<const uint8_t>) {
  return false;  // no VIRTIO_BLK_F_CONFIG_WCE: every field is read-only (5.2.4)
}

Status Blk::Activate(ActivateContext context) {
  if (context.queues.size() != 1) {
    return Fail("virtio-blk: expected 1 queue, got {}", context.queues.size());
  }
  {
    std::lock_guard lock(mu_);
    if (active_ || registered_) return Fail("virtio-blk: already active");
    memory_ = &context.memory;
    queue_ = &context.queues[0];
    interrupt_ = &context.interrupt;
    const uint64_t features = context.features & features_;
    limits_ = BlkLimits{
        .capacity_sectors = config_.capacity,
        .read_only = backend_->read_only(),
        .flush = true,
        .discard = (features & kBlkFDiscard) != 0,
        .write_zeroes = (features & kBlkFWriteZeroes) != 0,
        .max_data_bytes = block::BlockBackend::kMaxRequestBytes,
        .max_discard_sectors = config_.max_discard_sectors,
        .max_discard_seg = config_.max_discard_seg,
        .max_write_zeroes_sectors = config_.max_write_zeroes_sectors,
        .max_write_zeroes_seg = config_.max_write_zeroes_seg,
    };
    needs_reset_ = false;
    used_pending_ = false;
    active_ = true;
  }
  Status added = loop_.Add(notify_.fd(), EPOLLIN, [this](uint32_t) { OnNotify(); });
  if (added) {
    added = loop_.Add(backend_->completion_fd(), EPOLLIN, [this](uint32_t) { OnCompletions(); });
    if (!added) (void)loop_.Remove(notify_.fd());
  }
  std::lock_guard lock(mu_);
  if (!added) {
    active_ = false;
    memory_ = nullptr;
    queue_ = nullptr;
    interrupt_ = nullptr;
    return Wrap("virtio-blk: watching its fds", added.error());
  }
  registered_ = true;
  notify_.Signal();  // buffers made available before DRIVER_OK are processed now
  return {};
}

void Blk::Reset() {
  bool registered;
  {
    std::lock_guard lock(mu_);
    active_ = false;  // a handler that still runs completes nothing more
    registered = registered_;
    registered_ = false;
  }
  // Without mu_: Remove waits for a running handler, which takes mu_.
  if (registered) {
    if (auto removed = loop_.Remove(notify_.fd()); !removed) {
      Log(LogLevel::kError, "virtio-blk: {}", removed.error().message);
    }
    if (auto removed = loop_.Remove(backend_->completion_fd()); !removed) {
      Log(LogLevel::kError, "virtio-blk: {}", removed.error().message);
    }
  }
  std::lock_guard lock(mu_);
  // No handler runs now, so this thread may use the backend.
  DrainInFlight();
  pending_head_ = 0;
  pending_count_ = 0;
  free_.clear();
  for (size_t i = kQueueSize; i > 0; --i) free_.push_back(static_cast<uint16_t>(i - 1));
  memory_ = nullptr;
  queue_ = nullptr;
  interrupt_ = nullptr;
  needs_reset_ = false;
  used_pending_ = false;
  notify_.Drain();
}

void Blk::DrainInFlight() {
  // Requests in flight write into guest memory and own slots: wait for all of them. This
  // waits on host I/O, not on the guest; a stuck host disk is logged.
  for (int round = 0; in_flight_ > 0; ++round) {
    pollfd pfd{backend_->completion_fd(), POLLIN, 0};
    (void)::poll(&pfd, 1, 100);
    backend_->ProcessCompletions();
    if (round == 50) {
      Log(LogLevel::kWarn, "virtio-blk: reset waits for {} requests in flight", in_flight_);
    }
  }
}

bool Blk::needs_reset() const {
  std::lock_guard lock(mu_);
  return needs_reset_;
}

BlkCounters Blk::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

size_t Blk::in_flight() const {
  std::lock_guard lock(mu_);
  return kQueueSize - free_.size();
}

void Blk::QueueNotify(uint16_t index) {
  if (index != 0) {
    std::lock_guard lock(mu_);
    counters_.dropped_notifications++;
    return;
  }
  notify_.Signal();  // any thread; the loop processes the queue (an inactive device ignores it)
}

void Blk::QueueNotifyOnIoThread(uint16_t index) {
  if (index != 0) return QueueNotify(index);
  std::lock_guard lock(mu_);
  if (!active_) return;
  ProcessQueue();
  MaybeSignal();
}

void Blk::OnNotify() {
  notify_.Drain();
  std::lock_guard lock(mu_);
  if (!active_) return;
  ProcessQueue();
  MaybeSignal();
}

void Blk::OnCompletions() {
  std::lock_guard lock(mu_);
  backend_->ProcessCompletions();
  if (!active_) return;
  ProcessQueue();  // resubmits what waited for the backend, and pops what waited for slots
  MaybeSignal();
}

void Blk::MaybeSignal() {
  if (used_pending_ && queue_->NeedsNotification(*memory_)) interrupt_->SignalUsed(0);
  used_pending_ = false;
}

void Blk::ProcessQueue() {
  if (queue_ == nullptr || !queue_->ready() || needs_reset_) return;
  if (!SubmitPending()) return;  // the backend is full: resume on its next completion
  // Bounded: past this many chains, come back through the eventfd after other fds ran.
  const uint32_t max_rounds = 4u * queue_->size();
  for (uint32_t round = 0;; ++round) {
    if (round == max_rounds) {
      notify_.Signal();
      break;
    }
    if (free_.empty()) {  // resume when a completion frees a slot
      counters_.pool_full++;
      break;
    }
    PopResult result = queue_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) break;
    if (result == PopResult::kBroken) {
      if (!needs_reset_) {
        needs_reset_ = true;
        interrupt_->SignalConfigChange();  // 2.1.2
      }
      break;
    }
    if (result == PopResult::kBadChain) {
      counters_.bad_chains++;
      counters_.bad_requests++;
      Complete(chain_.head(), 0);
      continue;
    }
    HandleChain();
    if (pending_count_ >= kSubmitBatch && !SubmitPending()) break;
  }
  (void)SubmitPending();
}

void Blk::HandleChain() {
  const uint16_t index = free_.back();
  Slot& slot = slots_[index];
  BlkRequest& request = slot.request;
  ParseBlkRequest(*memory_, chain_, limits_, slot.iov, request);
  if (!request.has_status) {
    counters_.no_status++;
    counters_.bad_requests++;
    Complete(chain_.head(), 0);
    return;
  }
  if (request.error != BlkError::kShortHeader) {
    switch (request.type) {
      case kBlkTIn:
        counters_.reads++;
        break;
      case kBlkTOut:
        counters_.writes++;
        break;
      case kBlkTFlush:
        counters_.flushes++;
        break;
      case kBlkTGetId:
        counters_.get_ids++;
        break;
      case kBlkTDiscard:
        counters_.discards++;
        break;
      case kBlkTWriteZeroes:
        counters_.write_zeroes++;
        break;
      default:
        break;
    }
  }
  if (request.error != BlkError::kNone) {
    const uint8_t status = request.status();
    counters_.bad_requests++;
    if (status == kBlkSIoErr) counters_.io_errors++;
    if (status == kBlkSUnsupp) counters_.unsupported++;
    memory_->WriteObj(request.status_addr, status);
    Complete(chain_.head(), 1);
    return;
  }
  if (request.op == BlkOp::kGetId) {
    ChainWriter writer(*memory_, chain_);
    const size_t n = std::min<uint64_t>(request.data_len, kBlkIdBytes);
    const size_t written = writer.Write(std::span<const uint8_t>(id_).first(n));
    memory_->WriteObj(request.status_addr, kBlkSOk);
    Complete(chain_.head(), static_cast<uint32_t>(written + 1));
    return;
  }
  free_.pop_back();
  slot.head = chain_.head();
  slot.next_segment = 0;
  pending_[(pending_head_ + pending_count_) % kQueueSize] = index;
  pending_count_++;
}

bool Blk::SubmitPending() {
  // Bounded: each pass submits at least one request or returns.
  while (pending_count_ > 0) {
    const size_t n = std::min(pending_count_, kSubmitBatch);
    for (size_t i = 0; i < n; ++i) {
      batch_[i] = ToBackend(slots_[pending_[(pending_head_ + i) % kQueueSize]]);
    }
    const size_t accepted = backend_->SubmitBatch(std::span(batch_).first(n));
    pending_head_ = (pending_head_ + accepted) % kQueueSize;
    pending_count_ -= accepted;
    in_flight_ += accepted;
    if (accepted < n) {
      counters_.backend_full++;
      return false;
    }
  }
  return true;
}

block::BlockRequest Blk::ToBackend(Slot& slot) {
  using Op = block::BlockRequest::Op;
  const BlkRequest& request = slot.request;
  block::BlockRequest out{.cookie = &slot};
  switch (request.op) {
    case BlkOp::kRead:
    case BlkOp::kWrite:
      out.op = request.op == BlkOp::kRead ? Op::kRead : Op::kWrite;
      out.offset = request.offset();
      out.iov = std::span<const iovec>(slot.iov.data(), request.iov_count);
      break;
    case BlkOp::kDiscard:
    case BlkOp::kWriteZeroes: {
      const BlkDwzSegment& segment = request.segments[slot.next_segment];
      out.op = request.op == BlkOp::kDiscard ? Op::kDiscard : Op::kWriteZeroes;
      out.offset = segment.sector << kBlkSectorShift;
      out.length = uint64_t{segment.num_sectors} << kBlkSectorShift;
      break;
    }
    default:  // kFlush (kNone and kGetId never reach the backend)
      out.op = Op::kFlush;
      break;
  }
  return out;
}

void Blk::OnBackendDone(void* cookie, int32_t result) {
  Slot& slot = *static_cast<Slot*>(cookie);
  in_flight_--;
  // Marked whatever the result (a failed write may have changed part of its range), and on
  // completion, so a chunk block migration has just read can only change with a new mark.
  switch (slot.request.op) {
    case BlkOp::kWrite:
      dirty_.Mark(slot.request.offset(), slot.request.data_len);
      break;
    case BlkOp::kDiscard:
    case BlkOp::kWriteZeroes: {
      const BlkDwzSegment& segment = slot.request.segments[slot.next_segment];
      dirty_.Mark(segment.sector << kBlkSectorShift,
                  uint64_t{segment.num_sectors} << kBlkSectorShift);
      break;
    }
    case BlkOp::kRead:
      // The backend read straight into guest RAM, which no accelerator's dirty log sees.
      if (memory_ != nullptr) {
        for (size_t i = 0; i < slot.request.iov_count; ++i) {
          memory_->MarkWrittenHost(slot.iov[i].iov_base, slot.iov[i].iov_len);
        }
      }
      break;
    default:
      break;
  }
  if (!active_) {  // Reset is draining: the driver no longer expects this completion
    FreeSlot(slot);
    return;
  }
  const BlkRequest& request = slot.request;
  const bool transfer = request.op == BlkOp::kRead || request.op == BlkOp::kWrite;
  if (result < 0 || (transfer && static_cast<uint64_t>(result) != request.data_len)) {
    counters_.backend_errors++;
    CompleteSlot(slot, kBlkSIoErr);
    return;
  }
  if ((request.op == BlkOp::kDiscard || request.op == BlkOp::kWriteZeroes) &&
      ++slot.next_segment < request.segment_count) {
    const auto index = static_cast<uint16_t>(&slot - slots_.data());
    pending_[(pending_head_ + pending_count_) % kQueueSize] = index;
    pending_count_++;
    return;
  }
  if (request.op == BlkOp::kRead) counters_.bytes_read += request.data_len;
  if (request.op == BlkOp::kWrite) counters_.bytes_written += request.data_len;
  CompleteSlot(slot, kBlkSOk);
}

void Blk::CompleteSlot(Slot& slot, uint8_t status) {
  const BlkRequest& request = slot.request;
  if (status == kBlkSIoErr) counters_.io_errors++;
  memory_->WriteObj(request.status_addr, status);
  uint64_t used = 1;
  if (request.op == BlkOp::kRead && status == kBlkSOk) used += request.data_len;
  Complete(slot.head, static_cast<uint32_t>(used));
  FreeSlot(slot);
}

void Blk::Complete(uint16_t head, uint32_t used_len) {
  used_pending_ |= queue_->AddUsed(*memory_, head, used_len);
}

void Blk::FreeSlot(Slot& slot) { free_.push_back(static_cast<uint16_t>(&slot - slots_.data())); }

}  // namespace vireo::virtio
