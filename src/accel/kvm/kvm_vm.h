// KvmVm: one KVM VM fd with the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT, or with
// KVM's split irqchip (LAPICs in KVM; IOAPIC, PIC and PIT Vireo's: split_irqchip.h).
#pragma once

#include <linux/kvm.h>

#include <memory>
#include <mutex>
#include <vector>

#include "accel/accelerator.h"
#include "accel/kvm/split_irqchip.h"
#include "base/unique_fd.h"

namespace vireo::kvm {

class KvmAccelerator;

class KvmVm : public accel::Vm, private SplitIrqchipHost {
 public:
  // `split`: KVM_CAP_SPLIT_IRQCHIP instead of KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2.
  static Result<std::unique_ptr<KvmVm>> Create(const KvmAccelerator& kvm, int vcpu_count,
                                               bool split);
  ~KvmVm() override;

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
  Status SetPitIrqEnabled(bool enabled) override;
  // kvm_state.cc
  Result<accel::VmSavedState> SaveState() override;
  Status RestoreState(const accel::VmSavedState& state) override;
  Status StartDirtyLog() override;
  Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() override;

  int fd() const { return fd_.get(); }
  // The userspace IOAPIC/PIC/PIT in split mode, else null.
  SplitIrqchip* split_irqchip() const { return split_.get(); }

 protected:
  std::string accelerator_name() const override { return "kvm"; }

 private:
  KvmVm(const KvmAccelerator& kvm, UniqueFd fd) : kvm_(kvm), fd_(std::move(fd)) {}
  Status IoEventIoctl(const IoEvent& event, int event_fd, bool deassign);
  Status IrqFdIoctl(uint32_t gsi, int event_fd, bool deassign);
  Status CreateSplitIrqchip(int vcpu_count);
  // SplitIrqchipHost
  bool DeliverMsi(uint64_t address, uint32_t data) override;
  void RoutePinToMsi(int pin, uint64_t address, uint32_t data) override;

  // GSIs 0-23 are the PIC/IOAPIC lines; MSI routes take the GSIs above them.
  static constexpr uint32_t kFirstMsiGsi = 24;
  static constexpr uint32_t kMaxGsi = 1024;

  const KvmAccelerator& kvm_;
  UniqueFd fd_;
  std::mutex routes_mutex_;
  std::vector<kvm_irq_routing_entry> routes_;
  uint32_t next_msi_gsi_ = kFirstMsiGsi;
  uint32_t next_slot_ = 0;
  std::vector<kvm_userspace_memory_region> slots_;  // as registered, for the dirty log
  irqchip::MonotonicClock clock_;
  std::unique_ptr<SplitIrqchip> split_;  // last: its thread stops before the rest goes
};

}  // namespace vireo::kvm
