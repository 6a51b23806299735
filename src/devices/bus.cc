#include "devices/bus.h"

#include <algorithm>
#include <cstring>

#include "base/bytes.h"

namespace vireo {

Status Bus::Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t size) {
  if (size == 0 || base + size < base) {
    return Fail("{} bus: device {} has an invalid range {:#x}+{:#x}", name_, device->name(), base,
                size);
  }
  for (const Entry& e : entries_) {
    if (base < e.base + e.size && e.base < base + size) {
      return Fail("{} bus: {} at {:#x}-{:#x} overlaps {} at {:#x}-{:#x}", name_, device->name(),
                  base, base + size - 1, e.device->name(), e.base, e.base + e.size - 1);
    }
  }
  auto pos = std::upper_bound(entries_.begin(), entries_.end(), base,
                              [](uint64_t b, const Entry& e) { return b < e.base; });
  entries_.insert(pos, Entry{base, size, std::move(device)});
  return {};
}

const Bus::Entry* Bus::Find(uint64_t address, uint64_t len) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), address,
                             [](uint64_t a, const Entry& e) { return a < e.base; });
  if (it == entries_.begin()) return nullptr;
  --it;
  if (!RangeFits(address - it->base, len, it->size)) return nullptr;
  return &*it;
}

bool Bus::Read(uint64_t address, std::span<uint8_t> data) const {
  const Entry* e = Find(address, data.size());
  if (e == nullptr) {
    unclaimed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  e->device->Read(address - e->base, data);
  return true;
}

bool Bus::Write(uint64_t address, std::span<const uint8_t> data) const {
  const Entry* e = Find(address, data.size());
  if (e == nullptr) {
    unclaimed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  e->device->Write(address - e->base, data);
  return true;
}

bool Bus::ReadOrOpenBus(uint64_t address, std::span<uint8_t> data) const {
  if (Read(address, data)) return true;
  std::memset(data.data(), 0xff, data.size());
  return false;
}

}  // namespace vireo
