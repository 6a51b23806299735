#include "accel/emu/emu_accelerator.h"

#include "accel/emu/emu_vm.h"
#include "base/log.h"

namespace vireo::emu {

Result<std::unique_ptr<accel::Vm>> EmuAccelerator::CreateVm(int vcpu_count) {
  if (vcpu_count < 1 || vcpu_count > max_vcpus()) {
    return Fail(
        "{} vCPUs: the software CPU runs {} vCPU for now (SMP needs its interrupt "
        "controllers, not emulated yet); use --cpus 1, or --accel kvm",
        vcpu_count, max_vcpus());
  }
  Log(LogLevel::kInfo,
      "software CPU: no interrupt controller is emulated yet, so interrupts are not delivered");
  return std::unique_ptr<accel::Vm>(std::make_unique<EmuVm>(vcpu_count));
}

}  // namespace vireo::emu
