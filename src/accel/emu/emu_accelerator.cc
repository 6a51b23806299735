#include "accel/emu/emu_accelerator.h"

#include "accel/emu/emu_vm.h"

namespace vireo::emu {

Result<std::unique_ptr<accel::Vm>> EmuAccelerator::CreateVm(int vcpu_count) {
  if (vcpu_count < 1 || vcpu_count > max_vcpus()) {
    return Fail("{} vCPUs: the software CPU runs 1 to {} vCPUs", vcpu_count, max_vcpus());
  }
  return std::unique_ptr<accel::Vm>(std::make_unique<EmuVm>(vcpu_count));
}

}  // namespace vireo::emu
