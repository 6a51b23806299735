// An edge-triggered interrupt line backed by a KVM irqfd: raising it is one eventfd write,
// with no ioctl and no trip through the VMM's interrupt code. The accelerator turns each
// signal into an edge on the GSI. Only for edge lines (the ISA IRQs virtio-mmio uses): a
// level line needs a resample fd, which this does not model.
#pragma once

#include "base/event_loop.h"
#include "devices/interrupt_line.h"

namespace vireo {

class IrqFdLine : public InterruptLine {
 public:
  explicit IrqFdLine(EventFd event) : event_(std::move(event)) {}
  void SetLevel(bool asserted) override {
    if (asserted) event_.Signal();
  }
  int fd() const { return event_.fd(); }

 private:
  EventFd event_;
};

}  // namespace vireo
