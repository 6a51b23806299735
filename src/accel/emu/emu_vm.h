// EmuVm: a VM on the software CPU. Guest RAM is the VMM's own mapping (the interpreter reads
// and writes it directly); ioeventfds are matched here on the vCPU's write exits. There is
// no interrupt controller yet (the userspace LAPIC/IOAPIC/PIC come next), so interrupt lines,
// irqfds and MSIs are accepted and counted but reach no vCPU: guests that need interrupts do
// not run on --accel emu yet, and the VM says so once at creation.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "accel/accelerator.h"
#include "accel/emu/dirty_log.h"

namespace vireo::emu {

class EmuVm final : public accel::Vm {
 public:
  explicit EmuVm(int vcpu_count) : vcpu_count_(vcpu_count) {}

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
  // No PIC, IOAPIC or PIT is emulated yet: a save holds them in their reset state (every
  // line masked) so a KVM restore starts them cleanly; a restore here skips them (logged).
  Result<accel::VmSavedState> SaveState() override;
  Status RestoreState(const accel::VmSavedState& state) override;
  Status StartDirtyLog() override;
  Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() override;

  // A vCPU's write to `address`: true when a registered ioeventfd matched and was signalled
  // (the write is then complete, as with KVM's ioeventfd).
  bool SignalIoEvent(bool mmio, uint64_t address, uint32_t size, uint64_t value);

  // Interrupts raised while no controller exists to deliver them (lines, irqfds, MSIs).
  uint64_t undelivered_interrupts() const { return undelivered_.load(); }

 protected:
  std::string accelerator_name() const override { return "emu"; }

 private:
  struct Registered {
    IoEvent event;
    int fd = -1;
  };

  int vcpu_count_;
  const GuestMemory* memory_ = nullptr;
  std::unique_ptr<DirtyLog> dirty_log_;
  std::mutex io_events_mutex_;
  std::vector<Registered> io_events_;
  std::vector<std::pair<uint32_t, int>> irqfds_;
  uint32_t next_msi_gsi_ = 24;  // after the IOAPIC's pins, as on KVM
  std::atomic<uint64_t> undelivered_{0};
};

}  // namespace vireo::emu
