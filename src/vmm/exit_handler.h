// The vCPU exit handler: one switch on the exit reason (kvmtool's kvm-cpu.c shape),
// as a free function over narrow inputs so tests can feed it made-up exits with no guest.
// Hot path: no allocation, no exceptions, no locks of its own.
#pragma once

#include <string>

#include "accel/accelerator.h"
#include "devices/bus.h"
#include "vmm/exit_stats.h"
#include "vmm/stop_controller.h"

namespace vireo {

struct ExitContext {
  const Bus& pio;
  const Bus& mmio;
  StopController& stop;
  VcpuCounters& counters;
};

enum class ExitAction {
  kContinue,  // re-enter the guest
  kStop,      // leave the run loop (a stop was requested or the exit was fatal)
  kFatal,     // the exit cannot be handled: the caller describes it and stops the VM
};

ExitAction HandleExit(const accel::VcpuExit& exit, ExitContext& context);

// A diagnostic for an exit the VMM cannot handle: reason, vCPU, RIP and instruction bytes.
std::string DescribeFatalExit(const accel::VcpuExit& exit, accel::Vcpu& vcpu,
                              const GuestMemory& memory);

}  // namespace vireo
