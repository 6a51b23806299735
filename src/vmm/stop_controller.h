// StopController: the one place a VM's stop is decided. Devices, vCPU threads and the
// signal handler all request a stop here; the first request wins, every vCPU is kicked,
// and the main thread is woken through an eventfd.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include "base/unique_fd.h"
#include "devices/vm_control.h"
#include "vmm/run_outcome.h"

namespace vireo {

class StopController {
 public:
  StopController();

  // Returns true if this request decided the outcome.
  bool Request(RunOutcome outcome);
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  RunOutcome outcome() const;
  // Readable once a stop has been requested.
  int event_fd() const { return event_fd_.get(); }
  // Called once on the first request (kicks the vCPUs).
  void set_on_stop(std::function<void()> on_stop) { on_stop_ = std::move(on_stop); }

 private:
  std::atomic<bool> stopped_{false};
  mutable std::mutex mutex_;
  RunOutcome outcome_;
  UniqueFd event_fd_;
  std::function<void()> on_stop_;
};

// The VmControl a device gets: guest stop requests, tagged with the device's name so
// a reset says where it came from ("guest reset (i8042)").
class DeviceVmControl : public VmControl {
 public:
  DeviceVmControl(StopController& controller, std::string source)
      : controller_(controller), source_(std::move(source)) {}
  void RequestStop(StopKind kind, int exit_status) override;

 private:
  StopController& controller_;
  std::string source_;
};

}  // namespace vireo
