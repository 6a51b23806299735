// Test doubles shared by every device unit test: an interrupt line and a VM control that
// record what devices ask of them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "devices/bus_device.h"
#include "devices/interrupt_line.h"
#include "devices/vm_control.h"

namespace vireo::testing {

class FakeInterruptLine : public InterruptLine {
 public:
  void SetLevel(bool asserted) override {
    level = asserted;
    changes.push_back(asserted);
  }
  bool level = false;
  std::vector<bool> changes;  // every SetLevel call, in order
};

class FakeVmControl : public VmControl {
 public:
  struct Request {
    StopKind kind;
    int exit_status;
  };
  void RequestStop(StopKind kind, int exit_status) override {
    requests.push_back({kind, exit_status});
  }
  std::vector<Request> requests;
};

inline uint8_t ReadByte(BusDevice& device, uint64_t offset) {
  uint8_t value = 0;
  device.Read(offset, std::span<uint8_t>(&value, 1));
  return value;
}

inline void WriteByte(BusDevice& device, uint64_t offset, uint8_t value) {
  device.Write(offset, std::span<const uint8_t>(&value, 1));
}

}  // namespace vireo::testing
