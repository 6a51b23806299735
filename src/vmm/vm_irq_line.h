// An InterruptLine wired to a GSI of whichever accelerator VM is current. Devices that
// outlive a guest reset (the UART, the RTC) keep their line while the VM is rebuilt.
#pragma once

#include <atomic>
#include <cstdint>

#include "accel/accelerator.h"
#include "devices/interrupt_line.h"

namespace vireo {

class VmIrqLine : public InterruptLine {
 public:
  explicit VmIrqLine(uint32_t gsi) : gsi_(gsi) {}
  void Attach(accel::Vm* vm) { vm_.store(vm, std::memory_order_release); }
  void SetLevel(bool asserted) override {
    if (accel::Vm* vm = vm_.load(std::memory_order_acquire)) (void)vm->SetIrqLine(gsi_, asserted);
  }

 private:
  uint32_t gsi_;
  std::atomic<accel::Vm*> vm_{nullptr};
};

}  // namespace vireo
