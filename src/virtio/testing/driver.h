// A test-side virtio driver: lays out split rings in a GuestMemory, posts direct and
// indirect chains, kicks, and reads used entries (virtio 1.2, 2.7.13 "Supplying Buffers
// to The Device", 2.7.14 "Receiving Used Buffers From The Device"). Also helpers that drive
// an MmioTransport through its registers (4.2.3). Tests only: it trusts its inputs and
// writes whatever garbage a hostile test asks for.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/bus_device.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace vireo::virtio::testing {

// Two RAM regions with a hole between them: [0, 1 MiB) and [2 MiB, 3 MiB).
inline constexpr GuestAddress kRegion0End = 1ull << 20;
inline constexpr GuestAddress kRegion1Base = 2ull << 20;
inline constexpr GuestAddress kRegion1End = 3ull << 20;
GuestMemory MakeTestMemory();

struct TestBuffer {
  GuestAddress addr;
  uint32_t len;
  bool writable;
};

class TestDriver {
 public:
  // Rings at `base` (desc), base + 0x4000 (avail), base + 0x8000 (used); room for 1024.
  TestDriver(const GuestMemory& memory, uint16_t size, GuestAddress base = 0x10000);

  uint16_t size() const { return size_; }
  GuestAddress desc_table() const { return desc_; }
  GuestAddress avail_ring() const { return avail_; }
  GuestAddress used_ring() const { return used_; }
  // Points `queue` at these rings (size and addresses; not Activate).
  void Configure(Queue& queue) const;

  void WriteDescriptor(GuestAddress table, uint16_t index, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next) const;
  void WriteDescriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                       uint16_t next) const {
    WriteDescriptor(desc_, index, addr, len, flags, next);
  }
  // Writes `buffers` as a chain into consecutive free descriptors and publishes its head.
  uint16_t AddChain(std::span<const TestBuffer> buffers);
  // Writes `buffers` as an indirect table at `table`, one INDIRECT descriptor pointing to
  // it, and publishes that descriptor.
  uint16_t AddIndirectChain(GuestAddress table, std::span<const TestBuffer> buffers);
  // Puts `head` in the next avail slot and increments avail idx.
  void Publish(uint16_t head);

  void SetAvailIdx(uint16_t idx);
  uint16_t avail_idx() const { return avail_idx_; }
  void SetAvailFlags(uint16_t flags) const;
  void SetUsedEvent(uint16_t value) const;
  uint16_t ReadAvailEvent() const;
  uint16_t ReadUsedIdx() const;
  // The next used element not yet consumed by this driver.
  std::optional<UsedElement> NextUsed();

 private:
  const GuestMemory& memory_;
  uint16_t size_;
  GuestAddress desc_, avail_, used_;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  uint16_t next_free_ = 0;
};

// A QueueInterrupt that records what a device signals.
class RecordingInterrupt : public QueueInterrupt {
 public:
  void SignalUsed(uint16_t queue_index) override { used.push_back(queue_index); }
  void SignalConfigChange() override { config_changes++; }
  std::vector<uint16_t> used;
  int config_changes = 0;
};

// Register access to an MmioTransport (or any BusDevice) with 32-bit accesses.
uint32_t Read32(BusDevice& device, uint64_t offset);
void Write32(BusDevice& device, uint64_t offset, uint32_t value);

// 3.1.1 up to and including FEATURES_OK: reset, ACKNOWLEDGE, DRIVER, feature words, and
// FEATURES_OK. Returns the status read back afterwards.
uint32_t MmioNegotiate(BusDevice& transport, uint64_t features);
// 4.2.3.2: select queue `index`, program `driver`'s rings and set QueueReady.
void MmioSetupQueue(BusDevice& transport, uint32_t index, const TestDriver& driver);

}  // namespace vireo::virtio::testing
