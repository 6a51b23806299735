// PciBarRouter: one BusDevice over a whole BAR window (the 32-bit memory window on the
// MMIO bus, or the I/O window on the port bus). The Bus forbids overlapping ranges and
// BARs move whenever the guest reprograms them, so instead of inserting each BAR on the
// bus, the VMM inserts the router once and the PciBus keeps its routes current.
//
// A route exists only while a BAR decodes: the PciBus removes it when the guest clears
// the Command register's Memory (or I/O) Space bit, or points the BAR at 0 or past the
// end of its address space. An access no route claims reads all ones and drops writes,
// like the open bus behind a PC's host bridge, and is counted.
//
// Lookups take a shared lock (many vCPUs at once); the PciBus takes it exclusively only
// to change a route. The BAR's handler runs under the shared lock and must not reprogram
// BARs itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/bus_device.h"
#include "devices/pci/pci_device.h"

namespace vireo::pci {

class PciBarRouter final : public BusDevice {
 public:
  // The router answers for [window_base, window_base + window_size); the VMM inserts it
  // at exactly that range, so bus offsets add back to absolute addresses.
  PciBarRouter(std::string name, uint64_t window_base, uint64_t window_size)
      : name_(std::move(name)), window_base_(window_base), window_size_(window_size) {}

  std::string_view name() const override { return name_; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Routes [base, base + size) to BAR `bar` of the device in `slot`, replacing that BAR's
  // previous route. Where BARs overlap (a guest's mistake), the lowest slot wins.
  void Map(int slot, int bar, uint64_t base, uint64_t size, std::shared_ptr<PciDevice> device);
  void Unmap(int slot, int bar);

  uint64_t window_base() const { return window_base_; }
  uint64_t window_size() const { return window_size_; }
  uint64_t unrouted_accesses() const { return unrouted_.load(std::memory_order_relaxed); }
  size_t route_count() const;

 private:
  struct Route {
    int slot;
    int bar;
    uint64_t base;
    uint64_t size;
    BusDevice* handler;                 // device->bar_device(bar)
    std::shared_ptr<PciDevice> device;  // keeps the handler alive
  };
  // The route whose range holds all of [address, address + len), or nullptr.
  const Route* Find(uint64_t address, uint64_t len) const;

  std::string name_;
  uint64_t window_base_;
  uint64_t window_size_;
  mutable std::shared_mutex mutex_;
  std::vector<Route> routes_;  // guarded by mutex_; sorted by (slot, bar)
  std::atomic<uint64_t> unrouted_{0};
};

}  // namespace vireo::pci
