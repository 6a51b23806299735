// Bus: maps port or MMIO ranges to devices. Ranges never overlap: Insert refuses.
// Built before vCPUs start and read-only afterwards, so lookups take no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "devices/bus_device.h"

namespace vireo {

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  Status Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t size);

  // Dispatch an access; false when no device claims the address. The caller then
  // behaves like a PC's open bus: reads return all ones, writes are dropped.
  bool Read(uint64_t address, std::span<uint8_t> data) const;
  bool Write(uint64_t address, std::span<const uint8_t> data) const;

  // Reads fill `data` with 0xff on a miss; returns whether a device answered.
  bool ReadOrOpenBus(uint64_t address, std::span<uint8_t> data) const;

  uint64_t unclaimed_accesses() const { return unclaimed_.load(std::memory_order_relaxed); }

  struct Entry {
    uint64_t base;
    uint64_t size;
    std::shared_ptr<BusDevice> device;
  };
  std::span<const Entry> entries() const { return entries_; }

 private:
  const Entry* Find(uint64_t address, uint64_t len) const;

  std::string name_;
  std::vector<Entry> entries_;  // sorted by base
  mutable std::atomic<uint64_t> unclaimed_{0};
};

}  // namespace vireo
