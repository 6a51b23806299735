// virtio entropy device (virtio 1.2, 5.4 "Entropy Device"): device ID 4, one queue
// (requestq), no feature bits, no configuration space. Each chain's device-writable
// buffers are filled from getrandom(2), at most kMaxRequestBytes per chain (5.4.6: "the
// device MUST place one or more random bytes into the buffer"), and completed with the
// number of bytes written. A chain with no writable buffer, or a bad chain, completes
// with 0 bytes.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>

#include "virtio/device.h"
#include "virtio/queue.h"

namespace vireo::virtio {

struct RngCounters {
  uint64_t requests = 0;
  uint64_t bytes = 0;
  uint64_t bad_chains = 0;
  uint64_t entropy_failures = 0;       // getrandom failed: the chain completes with what it got
  uint64_t dropped_notifications = 0;  // while inactive
};

class Rng : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kMaxRequestBytes = 64 * 1024;

  Rng();

  std::string_view name() const override { return "rng"; }
  uint32_t device_type() const override { return kDeviceIdEntropy; }
  uint64_t device_features() const override { return 0; }
  uint16_t num_queues() const override { return 1; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  bool ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(ActivateContext context) override;
  void Reset() override;
  void QueueNotify(uint16_t index) override;
  bool needs_reset() const override;

  RngCounters counters() const;

 private:
  // Fills the chain's writable buffers; returns the bytes written.
  uint32_t Fill(const DescriptorChain& chain);
  void ProcessQueue();

  mutable std::mutex mu_;
  // Guarded by mu_. Set between Activate and Reset.
  const GuestMemory* memory_ = nullptr;
  Queue* queue_ = nullptr;
  QueueInterrupt* interrupt_ = nullptr;
  bool needs_reset_ = false;
  DescriptorChain chain_;
  RngCounters counters_;
};

}  // namespace vireo::virtio
