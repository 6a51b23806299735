// EmuVm: a VM on the software CPU. Guest RAM is the VMM's own mapping (the interpreter reads
// and writes it directly); ioeventfds are matched here on the vCPU's write exits. The
// interrupt controllers and PIT are userspace models (EmuPlatform): GSI lines and MSIs go
// through them, and a thread of the VM reads the irqfds and raises their GSIs or MSI routes.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "accel/accelerator.h"
#include "accel/emu/code_tracker.h"
#include "accel/emu/dirty_log.h"
#include "accel/emu/emu_platform.h"
#include "base/unique_fd.h"
#include "devices/irqchip/irqfd_reader.h"

namespace vireo::emu {

class EmuVcpu;

class EmuVm final : public accel::Vm {
 public:
  explicit EmuVm(int vcpu_count);
  // Stops the irqfd reader.
  ~EmuVm() override;

  Status MapMemory(const GuestMemory& memory) override;
  Result<std::unique_ptr<accel::Vcpu>> CreateVcpu(int id) override;
  Status SetIrqLine(uint32_t gsi, bool level) override;
  Result<std::vector<accel::CpuidEntry>> SupportedCpuid() override;
  Status AddIoEvent(const IoEvent& event, int event_fd) override;
  Status RemoveIoEvent(const IoEvent& event, int event_fd) override;
  Status AddIrqFd(uint32_t gsi, int event_fd) override;
  Status RemoveIrqFd(uint32_t gsi, int event_fd) override;
  Status SignalMsi(uint64_t address, uint32_t data) override;
  Result<uint32_t> AddMsiRoute(uint64_t address, uint32_t data) override;
  Status SetPitIrqEnabled(bool enabled) override {
    platform_->SetPitIrqEnabled(enabled);
    return {};
  }
  // The platform's PICs, IOAPIC and PIT in the accelerator-neutral form (the LAPICs go with
  // each vCPU).
  Result<accel::VmSavedState> SaveState() override;
  Status RestoreState(const accel::VmSavedState& state) override;
  Status StartDirtyLog() override;
  Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() override;

  // A vCPU's write to `address`: true when a registered ioeventfd matched and was signalled
  // (the write is then complete, as with KVM's ioeventfd).
  bool SignalIoEvent(bool mmio, uint64_t address, uint32_t size, uint64_t value);

  EmuPlatform& platform() { return *platform_; }
  // Shared by the vCPUs for cross-modifying code; null with one vCPU.
  CodeTracker* code_tracker() { return code_tracker_.get(); }
  // vCPUs register so the platform can wake them (and unregister before they go away).
  void SetVcpu(int id, EmuVcpu* vcpu);

 protected:
  std::string accelerator_name() const override { return "emu"; }

 private:
  // Raises `gsi`: an MSI route's message, or an edge on the line.
  void RaiseGsi(uint32_t gsi);

  struct Registered {
    IoEvent event;
    int fd = -1;
  };

  int vcpu_count_;
  const GuestMemory* memory_ = nullptr;
  std::unique_ptr<DirtyLog> dirty_log_;
  std::mutex io_events_mutex_;
  std::vector<Registered> io_events_;
  irqchip::MonotonicClock clock_;
  std::unique_ptr<std::atomic<EmuVcpu*>[]> vcpus_;
  std::unique_ptr<EmuPlatform> platform_;
  std::unique_ptr<CodeTracker> code_tracker_;
  std::mutex msi_routes_mutex_;
  std::vector<std::pair<uint64_t, uint32_t>> msi_routes_;  // GSI 24 + index
  // Last: its thread (started by the first AddIrqFd) stops before the rest goes.
  irqchip::IrqFdReader irqfds_{"software CPU", [this](uint32_t gsi) { RaiseGsi(gsi); }};
};

}  // namespace vireo::emu
