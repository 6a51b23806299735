// KvmAccelerator: /dev/kvm. Opening it checks the API version and every capability
// Vireo relies on, and fails with a message that says what is missing and what to do.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "accel/accelerator.h"
#include "base/unique_fd.h"

namespace vireo::kvm {

class KvmAccelerator : public accel::Accelerator {
 public:
  static Result<std::unique_ptr<KvmAccelerator>> Open(const std::string& path = "/dev/kvm");

  std::string name() const override { return "kvm"; }
  Result<std::unique_ptr<accel::Vm>> CreateVm(int vcpu_count) override;
  int max_vcpus() const override { return max_vcpus_; }

  int fd() const { return fd_.get(); }
  int vcpu_mmap_size() const { return vcpu_mmap_size_; }
  Result<std::vector<accel::CpuidEntry>> SupportedCpuid() const;
  // VMs created from now on use KVM's split irqchip (LAPICs in KVM; IOAPIC, PIC and PIT in
  // userspace). Fails, naming the capability and the fix, where KVM lacks it.
  Status EnableSplitIrqchip();
  bool split_irqchip() const { return split_irqchip_; }
  // True when the host CPU has hardware assist (vmx/svm), i.e. KVM is not a software shim.
  static bool HostHasHardwareAssist();

 private:
  KvmAccelerator(UniqueFd fd, int vcpu_mmap_size, int max_vcpus)
      : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size), max_vcpus_(max_vcpus) {}

  UniqueFd fd_;
  int vcpu_mmap_size_;
  int max_vcpus_;
  bool split_irqchip_ = false;
};

}  // namespace vireo::kvm
