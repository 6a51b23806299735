// virtio console (virtio 1.2, 5.3 "Console Device"): device ID 3, a single port without
// VIRTIO_CONSOLE_F_MULTIPORT, so two queues: receiveq 0 (host to guest) and transmitq 1
// (guest to host) (5.3.2). No feature bits are offered; the configuration space (5.3.4)
// reads as zeros (cols = rows = 0: not valid without VIRTIO_CONSOLE_F_SIZE).
//
// Transmit: the readable bytes of each transmitq chain go to the output callback (at most
// kMaxTransmitBytes per chain, the rest dropped and counted) and the chain completes with
// 0 bytes written. Receive: host input is queued by EnqueueInput() (thread-safe) in a
// bounded buffer and copied into receiveq buffers whenever the guest has posted some.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "virtio/device.h"
#include "virtio/queue.h"

namespace vireo::virtio {

struct ConsoleCounters {
  uint64_t tx_bytes = 0;
  uint64_t tx_dropped = 0;  // bytes beyond kMaxTransmitBytes in one chain
  uint64_t rx_bytes = 0;    // delivered to the guest
  uint64_t rx_dropped = 0;  // host input refused because the buffer was full
  uint64_t bad_chains = 0;
  uint64_t dropped_notifications = 0;  // while inactive or for no such queue
};

class Console : public VirtioDevice {
 public:
  static constexpr uint16_t kReceiveQueue = 0;
  static constexpr uint16_t kTransmitQueue = 1;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kInputBufferSize = 64 * 1024;
  static constexpr uint32_t kMaxTransmitBytes = 1 << 20;
  static constexpr size_t kConfigSize = 12;  // cols, rows, max_nr_ports, emerg_wr

  using Output = std::function<void(std::span<const uint8_t>)>;

  // `output` receives the guest's transmitted bytes, from the thread that processes the
  // transmit queue, with the device lock held: it must not block for long and must not
  // call back into this device.
  explicit Console(Output output);

  std::string_view name() const override { return "console"; }
  uint32_t device_type() const override { return kDeviceIdConsole; }
  uint64_t device_features() const override { return 0; }
  uint16_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  bool ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(ActivateContext context) override;
  void Reset() override;
  void QueueNotify(uint16_t index) override;
  bool needs_reset() const override;

  // Host side, thread-safe. Queues as much of `bytes` as fits, delivers what the guest
  // has buffers for, and returns how many bytes were accepted; the rest is dropped and
  // counted. Input survives a device reset and is delivered after the next activation.
  size_t EnqueueInput(std::span<const uint8_t> bytes);
  // Free space in the input buffer: a host reader can wait while it is 0.
  size_t input_space() const;
  ConsoleCounters counters() const;

 private:
  void ProcessTransmit();
  void ProcessReceive();
  void Broken();

  const Output output_;

  mutable std::mutex mu_;
  // Guarded by mu_. Set between Activate and Reset.
  const GuestMemory* memory_ = nullptr;
  Queue* receive_ = nullptr;
  Queue* transmit_ = nullptr;
  QueueInterrupt* interrupt_ = nullptr;
  bool needs_reset_ = false;
  DescriptorChain chain_;
  // Pending host input: a fixed ring, so neither side allocates after construction.
  std::vector<uint8_t> input_;
  size_t input_head_ = 0;
  size_t input_count_ = 0;
  ConsoleCounters counters_;
};

}  // namespace vireo::virtio
