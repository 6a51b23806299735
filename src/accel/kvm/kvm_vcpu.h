// KvmVcpu: one vCPU fd and its shared kvm_run page.
#pragma once

#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <memory>
#include <span>

#include "accel/accelerator.h"
#include "base/mapping.h"
#include "base/unique_fd.h"

namespace vireo::kvm {

class KvmAccelerator;
class KvmVm;
class SplitIrqchip;

class KvmVcpu : public accel::Vcpu {
 public:
  static Result<std::unique_ptr<KvmVcpu>> Create(const KvmAccelerator& kvm, const KvmVm& vm,
                                                 int id);
  ~KvmVcpu() override;

  accel::VcpuExit Run() override;
  void Kick() override;
  void ClearKick() override;

  Result<accel::Registers> GetRegisters() override;
  Status SetRegisters(const accel::Registers& regs) override;
  Result<accel::SpecialRegisters> GetSpecialRegisters() override;
  Status SetSpecialRegisters(const accel::SpecialRegisters& sregs) override;
  Status SetCpuid(std::span<const accel::CpuidEntry> entries) override;
  Status SetMsrs(std::span<const accel::MsrEntry> msrs) override;
  Result<std::vector<accel::MsrEntry>> GetMsrs(std::span<const uint32_t> indices) override;
  Status SetupFpu() override;
  // The x87/SSE state as its FXSAVE image (the emulator's differential harness), through
  // KVM_GET_XSAVE/KVM_SET_XSAVE: this host's KVM_GET_FPU/KVM_SET_FPU drop MXCSR.
  Status GetFxsaveImage(std::span<uint8_t, 512> image);
  Status SetFxsaveImage(std::span<const uint8_t, 512> image);
  Status SetupLocalApic() override;
  std::optional<uint64_t> TranslateAddress(uint64_t linear) override;
  // kvm_state.cc
  Result<accel::VcpuSavedState> SaveState() override;
  Status RestoreState(const accel::VcpuSavedState& state) override;
  int id() const override { return id_; }

 protected:
  std::string accelerator_name() const override { return "kvm"; }

 private:
  KvmVcpu(int id, UniqueFd fd, Mapping run) : id_(id), fd_(std::move(fd)), run_(std::move(run)) {}
  kvm_run* run() const { return static_cast<kvm_run*>(run_.get()); }
  Result<std::vector<accel::CpuidEntry>> GetCpuid();
  // Split irqchip: true when the exit was the userspace models' (PIT/PIC ports, IOAPIC page,
  // a level EOI, an interrupt window) and has been handled, so KVM_RUN resumes at once.
  bool HandleSplitExit(kvm_run* r);

  int id_;
  int kvm_fd_ = -1;  // /dev/kvm, for KVM_GET_MSR_INDEX_LIST (owned by the accelerator)
  UniqueFd fd_;
  Mapping run_;
  std::atomic<pthread_t> thread_{0};  // the thread inside Run(), for Kick()
  SplitIrqchip* split_ = nullptr;     // the VM's, with --irqchip split
};

// The signal Kick() sends to interrupt KVM_RUN. Installed once, without SA_RESTART.
int KickSignal();

}  // namespace vireo::kvm
