// HpetDevice: the HPET model (hpet.h) on the MMIO bus, with one host timerfd on the I/O
// thread's event loop armed to the next comparator match, so an expiry wakes the VMM
// without polling and a halted guest costs nothing. vCPU threads (MMIO) and the I/O thread
// (expiries) share the model under one mutex.
//
// The clock must run on CLOCK_MONOTONIC (MonotonicClock does): the timerfd is armed with
// the model's absolute deadlines.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "base/deadline_timer.h"
#include "base/event_loop.h"
#include "base/result.h"
#include "devices/bus_device.h"
#include "devices/irqchip/hpet.h"

namespace vireo::irqchip {

class HpetDevice final : public BusDevice {
 public:
  // `callbacks` run with the device's mutex held, on a vCPU thread or the I/O thread.
  static Result<std::shared_ptr<HpetDevice>> Create(const Clock& clock, EventLoop& loop,
                                                    Hpet::Callbacks callbacks);
  ~HpetDevice() override;
  HpetDevice(const HpetDevice&) = delete;
  HpetDevice& operator=(const HpetDevice&) = delete;

  std::string_view name() const override { return "hpet"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Snapshot state (the VM is paused; an expiry may still run on the I/O thread, hence the
  // lock). Restore re-arms the timerfd for the restored comparators.
  HpetState SaveState();
  Status RestoreState(const HpetState& state);

 private:
  HpetDevice(const Clock& clock, EventLoop& loop, DeadlineTimer timer, Hpet::Callbacks callbacks);
  void OnExpiry();
  // Polls the model and arms the timerfd for its next event. mu_ held.
  void Update();

  EventLoop& loop_;
  std::mutex mu_;
  DeadlineTimer timer_;  // guarded by mu_
  Hpet hpet_;            // guarded by mu_
};

}  // namespace vireo::irqchip
