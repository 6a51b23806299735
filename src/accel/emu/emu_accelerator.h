// EmuAccelerator: `vireo run --accel emu`, the software x86-64 CPU behind the same
// accelerator interface as KVM (docs/emulator.md). Needs no /dev/kvm.
#pragma once

#include <memory>
#include <string>

#include "accel/accelerator.h"

namespace vireo::emu {

class EmuAccelerator final : public accel::Accelerator {
 public:
  std::string name() const override { return "emu"; }
  Result<std::unique_ptr<accel::Vm>> CreateVm(int vcpu_count) override;
  // One vCPU until the software CPU starts APs (INIT/SIPI through the local APICs).
  int max_vcpus() const override { return 1; }
};

}  // namespace vireo::emu
