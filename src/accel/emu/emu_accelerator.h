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
  // xAPIC IDs are 8 bits and 0xff is the broadcast address: 0-254 name vCPUs (the same
  // bound as the MADT's, x86::acpi::kMaxCpus). APs start through INIT/SIPI.
  int max_vcpus() const override { return 254; }
};

}  // namespace vireo::emu
