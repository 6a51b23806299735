#include "virtio/console.h"

#include <algorithm>
#include <array>

#include "virtio/descriptor_io.h"

namespace vireo::virtio {

Console::Console(Output output)
    : output_(std::move(output)), chain_(kQueueSize), input_(kInputBufferSize) {}

bool Console::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  static constexpr std::array<uint8_t, kConfigSize> kConfig{};  // 5.3.4, all zero
  return ReadConfigBytes(kConfig, offset, data);
}

bool Console::WriteConfig(uint64_t, std::span<const uint8_t>) {
  return false;  // emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE, not offered
}

Status Console::Activate(ActivateContext context) {
  std::lock_guard lock(mu_);
  if (context.queues.size() != 2) {
    return Fail("console: expected 2 queues, got {}", context.queues.size());
  }
  memory_ = &context.memory;
  receive_ = &context.queues[kReceiveQueue];
  transmit_ = &context.queues[kTransmitQueue];
  interrupt_ = &context.interrupt;
  needs_reset_ = false;
  ProcessTransmit();
  ProcessReceive();
  return {};
}

void Console::Reset() {
  std::lock_guard lock(mu_);
  memory_ = nullptr;
  receive_ = transmit_ = nullptr;
  interrupt_ = nullptr;
  needs_reset_ = false;
}

bool Console::needs_reset() const {
  std::lock_guard lock(mu_);
  return needs_reset_;
}

ConsoleCounters Console::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

size_t Console::input_space() const {
  std::lock_guard lock(mu_);
  return input_.size() - input_count_;
}

void Console::QueueNotify(uint16_t index) {
  std::lock_guard lock(mu_);
  if (memory_ == nullptr || index > kTransmitQueue) {
    counters_.dropped_notifications++;
    return;
  }
  if (index == kTransmitQueue) {
    ProcessTransmit();
  } else {
    ProcessReceive();  // the guest posted receive buffers
  }
}

size_t Console::EnqueueInput(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  size_t accepted = std::min(bytes.size(), input_.size() - input_count_);
  for (size_t i = 0; i < accepted; ++i) {
    input_[(input_head_ + input_count_ + i) % input_.size()] = bytes[i];
  }
  input_count_ += accepted;
  counters_.rx_dropped += bytes.size() - accepted;
  ProcessReceive();
  return accepted;
}

void Console::Broken() {
  if (needs_reset_) return;
  needs_reset_ = true;
  interrupt_->SignalConfigChange();  // 2.1.2
}

void Console::ProcessTransmit() {
  if (memory_ == nullptr || !transmit_->ready()) return;
  bool used = false;
  std::array<uint8_t, 4096> bounce;
  // Bounded like Rng::ProcessQueue: at most 4 rings' worth of chains per call.
  for (uint32_t i = 0; i < 4u * transmit_->size(); ++i) {
    PopResult result = transmit_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) break;
    if (result == PopResult::kBroken) {
      Broken();
      break;
    }
    if (result == PopResult::kChain) {
      ChainReader reader(*memory_, chain_);
      while (reader.bytes_read() < kMaxTransmitBytes && reader.remaining() > 0) {
        size_t n = reader.Read(std::span(bounce).first(
            std::min<size_t>(bounce.size(), kMaxTransmitBytes - reader.bytes_read())));
        if (n == 0) break;
        output_(std::span<const uint8_t>(bounce).first(n));
        counters_.tx_bytes += n;
      }
      counters_.tx_dropped += reader.remaining();
    } else {
      counters_.bad_chains++;
    }
    used |= transmit_->AddUsed(*memory_, chain_.head(), 0);
  }
  if (used && transmit_->NeedsNotification(*memory_)) interrupt_->SignalUsed(kTransmitQueue);
}

void Console::ProcessReceive() {
  if (memory_ == nullptr || !receive_->ready()) return;
  bool used = false;
  // Each round either delivers at least one byte, completes a bad or empty chain, or
  // stops; bounded like the transmit side.
  for (uint32_t i = 0; i < 4u * receive_->size() && input_count_ > 0; ++i) {
    PopResult result = receive_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) break;
    if (result == PopResult::kBroken) {
      Broken();
      break;
    }
    uint32_t len = 0;
    if (result == PopResult::kChain) {
      ChainWriter writer(*memory_, chain_);
      // Up to two pieces: the ring may wrap.
      for (int piece = 0; piece < 2 && input_count_ > 0 && writer.remaining() > 0; ++piece) {
        size_t contiguous = std::min(input_count_, input_.size() - input_head_);
        size_t n = writer.Write(std::span<const uint8_t>(input_).subspan(input_head_, contiguous));
        input_head_ = (input_head_ + n) % input_.size();
        input_count_ -= n;
        if (n < contiguous) break;
      }
      len = static_cast<uint32_t>(writer.bytes_written());
      counters_.rx_bytes += len;
    } else {
      counters_.bad_chains++;
    }
    used |= receive_->AddUsed(*memory_, chain_.head(), len);
  }
  if (used && receive_->NeedsNotification(*memory_)) interrupt_->SignalUsed(kReceiveQueue);
}

}  // namespace vireo::virtio
