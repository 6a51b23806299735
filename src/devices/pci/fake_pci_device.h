// Test double for the PCI unit tests: a function with a ConfigSpace, BARs whose handlers
// record every access, and a log of BarMoved calls.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/bytes.h"
#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"

namespace vireo::pci::testing {

// A BAR's register file: reads return the offset (so tests see where they landed),
// writes are recorded.
class RecordingBar : public BusDevice {
 public:
  struct Access {
    uint64_t offset;
    uint64_t value;
    size_t size;
  };
  std::string_view name() const override { return "recording-bar"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    reads.push_back({offset, 0, data.size()});
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset >> (8 * i));
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    uint64_t value = 0;
    for (size_t i = 0; i < data.size() && i < 8; ++i) value |= uint64_t{data[i]} << (8 * i);
    writes.push_back({offset, value, data.size()});
  }
  std::vector<Access> reads;
  std::vector<Access> writes;
};

class FakePciDevice : public PciDevice {
 public:
  struct Move {
    int bar;
    uint64_t old_address;
    uint64_t new_address;
  };

  explicit FakePciDevice(const std::vector<BarDefinition>& bars,
                         PciIds ids = {.vendor_id = 0x1af4, .device_id = 0x1041})
      : config(ids) {
    for (const BarDefinition& bar : bars) {
      auto added = config.AddBar(bar);
      EXPECT_TRUE(added) << added.error().message;
    }
  }

  std::string_view name() const override { return "fake-pci"; }
  void ConfigRead(uint16_t offset, std::span<uint8_t> data) override { config.Read(offset, data); }
  void ConfigWrite(uint16_t offset, std::span<const uint8_t> data) override {
    config.Write(offset, data);
  }
  std::span<const BarDefinition> bars() const override { return config.bars(); }
  BusDevice* bar_device(int bar) override {
    return bar >= 0 && bar < kBarCount ? &handlers[bar] : nullptr;
  }
  void BarMoved(int bar, uint64_t old_address, uint64_t new_address) override {
    moves.push_back({bar, old_address, new_address});
  }

  ConfigSpace config;
  std::array<RecordingBar, kBarCount> handlers;
  std::vector<Move> moves;
};

inline uint32_t Read32(BusDevice& device, uint64_t offset) {
  uint8_t bytes[4];
  device.Read(offset, bytes);
  return LoadLe<uint32_t>(bytes);
}

inline void Write32(BusDevice& device, uint64_t offset, uint32_t value) {
  uint8_t bytes[4];
  StoreLe(bytes, 0, value);
  device.Write(offset, bytes);
}

}  // namespace vireo::pci::testing
