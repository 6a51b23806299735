#include "virtio/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "virtio/descriptor_io.h"

namespace vireo::virtio {

Rng::Rng() : chain_(kQueueSize) {}

bool Rng::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  return ReadConfigBytes({}, offset, data);  // 5.4.4: no configuration space
}

bool Rng::WriteConfig(uint64_t, std::span<const uint8_t>) { return false; }

Status Rng::Activate(ActivateContext context) {
  std::lock_guard lock(mu_);
  if (context.queues.size() != 1)
    return Fail("rng: expected 1 queue, got {}", context.queues.size());
  memory_ = &context.memory;
  queue_ = &context.queues[0];
  interrupt_ = &context.interrupt;
  needs_reset_ = false;
  // Buffers the driver made available before DRIVER_OK are processed now.
  ProcessQueue();
  return {};
}

void Rng::Reset() {
  std::lock_guard lock(mu_);
  memory_ = nullptr;
  queue_ = nullptr;
  interrupt_ = nullptr;
  needs_reset_ = false;
}

bool Rng::needs_reset() const {
  std::lock_guard lock(mu_);
  return needs_reset_;
}

RngCounters Rng::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void Rng::QueueNotify(uint16_t index) {
  std::lock_guard lock(mu_);
  if (queue_ == nullptr || index != 0) {
    counters_.dropped_notifications++;
    return;
  }
  ProcessQueue();
}

uint32_t Rng::Fill(const DescriptorChain& chain) {
  ChainWriter writer(*memory_, chain);
  std::array<uint8_t, 4096> bounce;
  size_t want = std::min<size_t>(writer.remaining(), kMaxRequestBytes);
  // Bounded: 16 rounds fill kMaxRequestBytes; a few more absorb EINTR and short reads.
  for (int round = 0; want > 0 && round < 64; ++round) {
    size_t n = std::min(want, bounce.size());
    ssize_t got = ::getrandom(bounce.data(), n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      counters_.entropy_failures++;
      break;
    }
    size_t written = writer.Write(std::span(bounce).first(static_cast<size_t>(got)));
    if (written == 0) break;
    want -= written;
  }
  return static_cast<uint32_t>(writer.bytes_written());
}

void Rng::ProcessQueue() {
  if (queue_ == nullptr || !queue_->ready()) return;
  bool used = false;
  // Bounded: the avail ring holds at most size() chains; a driver refilling it while we
  // work can keep us here at most this many rounds before we return.
  for (uint32_t i = 0; i < 4u * queue_->size(); ++i) {
    PopResult result = queue_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) break;
    if (result == PopResult::kBroken) {
      if (!needs_reset_) {
        needs_reset_ = true;
        interrupt_->SignalConfigChange();  // 2.1.2
      }
      break;
    }
    uint32_t len = 0;
    if (result == PopResult::kChain) {
      len = Fill(chain_);
      counters_.requests++;
      counters_.bytes += len;
    } else {
      counters_.bad_chains++;
    }
    used |= queue_->AddUsed(*memory_, chain_.head(), len);
  }
  if (used && queue_->NeedsNotification(*memory_)) interrupt_->SignalUsed(0);
}

}  // namespace vireo::virtio
