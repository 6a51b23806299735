#include "virtio/testing/driver.h"

#include <cstdlib>
#include <vector>

#include "virtio/mmio_transport.h"
#include "virtio/status.h"

namespace vireo::virtio::testing {

GuestMemory MakeTestMemory() {
  const RamRange ranges[] = {{0, kRegion0End}, {kRegion1Base, kRegion1End - kRegion1Base}};
  MemoryOptions options;
  options.transparent_huge_pages = false;
  auto memory = GuestMemory::Create(ranges, options);
  if (!memory) std::abort();
  return std::move(*memory);
}

TestDriver::TestDriver(const GuestMemory& memory, uint16_t size, GuestAddress base)
    : memory_(memory), size_(size), desc_(base), avail_(base + 0x4000), used_(base + 0x8000) {
  // Zero the rings so every test starts from a clean driver.
  std::vector<uint8_t> zeros(0xc000);
  memory_.Write(base, zeros);
}

void TestDriver::Configure(Queue& queue) const {
  queue.set_size(size_);
  queue.set_desc_table(desc_);
  queue.set_avail_ring(avail_);
  queue.set_used_ring(used_);
}

void TestDriver::WriteDescriptor(GuestAddress table, uint16_t index, uint64_t addr, uint32_t len,
                                 uint16_t flags, uint16_t next) const {
  memory_.WriteObj(table + 16ull * index, Descriptor{addr, len, flags, next});
}

uint16_t TestDriver::AddChain(std::span<const TestBuffer> buffers) {
  uint16_t head = next_free_;
  for (size_t i = 0; i < buffers.size(); ++i) {
    uint16_t index = next_free_;
    next_free_ = static_cast<uint16_t>((next_free_ + 1) % size_);
    bool last = i + 1 == buffers.size();
    uint16_t flags = (buffers[i].writable ? kDescFWrite : 0) | (last ? 0 : kDescFNext);
    WriteDescriptor(index, buffers[i].addr, buffers[i].len, flags, last ? 0 : next_free_);
  }
  Publish(head);
  return head;
}

uint16_t TestDriver::AddIndirectChain(GuestAddress table, std::span<const TestBuffer> buffers) {
  for (size_t i = 0; i < buffers.size(); ++i) {
    bool last = i + 1 == buffers.size();
    uint16_t flags = (buffers[i].writable ? kDescFWrite : 0) | (last ? 0 : kDescFNext);
    WriteDescriptor(table, static_cast<uint16_t>(i), buffers[i].addr, buffers[i].len, flags,
                    last ? 0 : static_cast<uint16_t>(i + 1));
  }
  uint16_t head = next_free_;
  next_free_ = static_cast<uint16_t>((next_free_ + 1) % size_);
  WriteDescriptor(head, table, static_cast<uint32_t>(16 * buffers.size()), kDescFIndirect, 0);
  Publish(head);
  return head;
}

void TestDriver::Publish(uint16_t head) {
  memory_.WriteObj<uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head);
  SetAvailIdx(static_cast<uint16_t>(avail_idx_ + 1));
}

void TestDriver::SetAvailIdx(uint16_t idx) {
  avail_idx_ = idx;
  memory_.WriteObj<uint16_t>(avail_ + 2, idx);
}

void TestDriver::SetAvailFlags(uint16_t flags) const { memory_.WriteObj<uint16_t>(avail_, flags); }

void TestDriver::SetUsedEvent(uint16_t value) const {
  memory_.WriteObj<uint16_t>(avail_ + 4 + 2ull * size_, value);
}

uint16_t TestDriver::ReadAvailEvent() const {
  return memory_.ReadObj<uint16_t>(used_ + 4 + 8ull * size_).value_or(0xdead);
}

uint16_t TestDriver::ReadUsedIdx() const {
  return memory_.ReadObj<uint16_t>(used_ + 2).value_or(0xdead);
}

std::optional<UsedElement> TestDriver::NextUsed() {
  if (ReadUsedIdx() == last_used_) return std::nullopt;
  auto element = memory_.ReadObj<UsedElement>(used_ + 4 + 8ull * (last_used_ % size_));
  last_used_++;
  return element;
}

uint32_t Read32(BusDevice& device, uint64_t offset) {
  uint32_t value = 0;
  device.Read(offset, {reinterpret_cast<uint8_t*>(&value), 4});
  return value;
}

void Write32(BusDevice& device, uint64_t offset, uint32_t value) {
  device.Write(offset, {reinterpret_cast<const uint8_t*>(&value), 4});
}

uint32_t MmioNegotiate(BusDevice& transport, uint64_t features) {
  using T = MmioTransport;
  Write32(transport, T::kStatus, 0);
  Write32(transport, T::kStatus, DeviceStatus::kAcknowledge);
  Write32(transport, T::kStatus, DeviceStatus::kAcknowledge | DeviceStatus::kDriver);
  for (uint32_t sel = 0; sel < 2; ++sel) {
    Write32(transport, T::kDriverFeaturesSel, sel);
    Write32(transport, T::kDriverFeatures, static_cast<uint32_t>(features >> (32 * sel)));
  }
  Write32(transport, T::kStatus,
          DeviceStatus::kAcknowledge | DeviceStatus::kDriver | DeviceStatus::kFeaturesOk);
  return Read32(transport, T::kStatus);
}

void MmioSetupQueue(BusDevice& transport, uint32_t index, const TestDriver& driver) {
  using T = MmioTransport;
  Write32(transport, T::kQueueSel, index);
  Write32(transport, T::kQueueNum, driver.size());
  Write32(transport, T::kQueueDescLow, static_cast<uint32_t>(driver.desc_table()));
  Write32(transport, T::kQueueDescHigh, static_cast<uint32_t>(driver.desc_table() >> 32));
  Write32(transport, T::kQueueDriverLow, static_cast<uint32_t>(driver.avail_ring()));
  Write32(transport, T::kQueueDriverHigh, static_cast<uint32_t>(driver.avail_ring() >> 32));
  Write32(transport, T::kQueueDeviceLow, static_cast<uint32_t>(driver.used_ring()));
  Write32(transport, T::kQueueDeviceHigh, static_cast<uint32_t>(driver.used_ring() >> 32));
  Write32(transport, T::kQueueReady, 1);
}

}  // namespace vireo::virtio::testing
