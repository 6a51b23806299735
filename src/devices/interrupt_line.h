// An interrupt line as a device sees it: a wire into the interrupt controller.
#pragma once

namespace vireo {

class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  // Level-triggered devices hold the line; edge devices call Pulse().
  virtual void SetLevel(bool asserted) = 0;
  void Pulse() {
    SetLevel(true);
    SetLevel(false);
  }
};

}  // namespace vireo
