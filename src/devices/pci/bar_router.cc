#include "devices/pci/bar_router.h"

#include <algorithm>
#include <mutex>

#include "base/bytes.h"

namespace vireo::pci {

const PciBarRouter::Route* PciBarRouter::Find(uint64_t address, uint64_t len) const {
  // At most 32 slots x 6 BARs: a bounded scan in slot order, so the lowest slot wins.
  for (const Route& route : routes_) {
    if (address >= route.base && RangeFits(address - route.base, len, route.size)) return &route;
  }
  return nullptr;
}

void PciBarRouter::Read(uint64_t offset, std::span<uint8_t> data) {
  {
    std::shared_lock lock(mutex_);
    const Route* route = Find(window_base_ + offset, data.size());
    if (route != nullptr) {
      route->handler->Read(window_base_ + offset - route->base, data);
      return;
    }
  }
  unrouted_.fetch_add(1, std::memory_order_relaxed);
  std::fill(data.begin(), data.end(), 0xff);
}

void PciBarRouter::Write(uint64_t offset, std::span<const uint8_t> data) {
  {
    std::shared_lock lock(mutex_);
    const Route* route = Find(window_base_ + offset, data.size());
    if (route != nullptr) {
      route->handler->Write(window_base_ + offset - route->base, data);
      return;
    }
  }
  unrouted_.fetch_add(1, std::memory_order_relaxed);
}

void PciBarRouter::Map(int slot, int bar, uint64_t base, uint64_t size,
                       std::shared_ptr<PciDevice> device) {
  BusDevice* handler = device->bar_device(bar);
  std::unique_lock lock(mutex_);
  std::erase_if(routes_, [&](const Route& r) { return r.slot == slot && r.bar == bar; });
  if (handler == nullptr || size == 0) return;
  const Route route{slot, bar, base, size, handler, std::move(device)};
  auto at =
      std::upper_bound(routes_.begin(), routes_.end(), route, [](const Route& a, const Route& b) {
        return a.slot != b.slot ? a.slot < b.slot : a.bar < b.bar;
      });
  routes_.insert(at, route);
}

void PciBarRouter::Unmap(int slot, int bar) {
  std::unique_lock lock(mutex_);
  std::erase_if(routes_, [&](const Route& r) { return r.slot == slot && r.bar == bar; });
}

size_t PciBarRouter::route_count() const {
  std::shared_lock lock(mutex_);
  return routes_.size();
}

}  // namespace vireo::pci
