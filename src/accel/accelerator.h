// The accelerator interface: everything the VMM asks of a CPU virtualizer.
// KVM (accel/kvm) is the first implementation; the software x86-64 CPU is the second.
// Devices and boot code never see these types' internals, only the VMM core does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "accel/cpu_state.h"
#include "accel/vcpu_exit.h"
#include "accel/vcpu_state.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::accel {

class Vcpu {
 public:
  virtual ~Vcpu() = default;

  // Runs guest code until an exit the VMM must handle. Hot path: no allocation.
  // Returns kInterrupted when Kick() was called (or a signal arrived).
  virtual VcpuExit Run() = 0;

  // Makes a Run() in progress on another thread return kInterrupted soon, and the next
  // Run() return at once. Async-signal-safe and callable from any thread.
  virtual void Kick() = 0;
  // Clears a pending kick before the vCPU resumes.
  virtual void ClearKick() = 0;

  virtual Result<Registers> GetRegisters() = 0;
  virtual Status SetRegisters(const Registers& regs) = 0;
  virtual Result<SpecialRegisters> GetSpecialRegisters() = 0;
  virtual Status SetSpecialRegisters(const SpecialRegisters& sregs) = 0;
  virtual Status SetCpuid(std::span<const CpuidEntry> entries) = 0;
  virtual Status SetMsrs(std::span<const MsrEntry> msrs) = 0;
  virtual Result<std::vector<MsrEntry>> GetMsrs(std::span<const uint32_t> indices) = 0;
  // FPU reset state as after FNINIT, MXCSR default, XCR0 = x87|SSE (+AVX when supported).
  virtual Status SetupFpu() = 0;
  // LAPIC LINT0 = ExtINT (PIC), LINT1 = NMI, as a PC's firmware leaves them.
  virtual Status SetupLocalApic() = 0;

  // Guest linear → physical address under the vCPU's current paging, for diagnostics.
  virtual std::optional<uint64_t> TranslateAddress(uint64_t linear) = 0;

  // For accelerators whose interrupt controllers live in userspace (the software CPU):
  // `vector` is delivered once RFLAGS.IF and the interrupt shadow allow, waking a halted
  // vCPU; one may wait at a time. An NMI ignores IF. Callable from any thread.
  virtual Status InjectInterrupt(uint8_t /*vector*/) {
    return Fail("interrupt injection is not supported by the {} accelerator", accelerator_name());
  }
  virtual Status InjectNmi() {
    return Fail("NMI injection is not supported by the {} accelerator", accelerator_name());
  }

  // Snapshots: the whole architectural state of a vCPU that is not running (paused or not
  // yet started). Restore goes into a freshly created vCPU of a VM whose memory is mapped
  // and whose platform state (Vm::RestoreState) is already restored.
  virtual Result<VcpuSavedState> SaveState() {
    return Fail("vCPU snapshots are not supported by the {} accelerator", accelerator_name());
  }
  virtual Status RestoreState(const VcpuSavedState& /*state*/) {
    return Fail("vCPU restore is not supported by the {} accelerator", accelerator_name());
  }

  virtual int id() const = 0;

 protected:
  virtual std::string accelerator_name() const { return "this"; }
};

class Vm {
 public:
  virtual ~Vm() = default;

  // Registers guest RAM with the accelerator. Memory must outlive the VM.
  virtual Status MapMemory(const GuestMemory& memory) = 0;
  virtual Result<std::unique_ptr<Vcpu>> CreateVcpu(int id) = 0;
  // Drives a GSI line of the interrupt controller (edge devices pulse it).
  virtual Status SetIrqLine(uint32_t gsi, bool level) = 0;
  // CPUID the accelerator can offer, before the VMM shapes it for topology.
  virtual Result<std::vector<CpuidEntry>> SupportedCpuid() = 0;

  // Fast paths for devices (virtio): a guest write to `address` signals `event_fd`
  // without a vCPU exit (optionally only when the value equals `datamatch`) ...
  struct IoEvent {
    bool mmio = true;  // false: port I/O
    uint64_t address = 0;
    uint32_t length = 4;  // 1, 2, 4 or 8; 0 matches any width (MMIO only)
    std::optional<uint64_t> datamatch;
  };
  virtual Status AddIoEvent(const IoEvent& event, int event_fd) = 0;
  virtual Status RemoveIoEvent(const IoEvent& event, int event_fd) = 0;
  // ... and signalling `event_fd` raises `gsi` (edge) without a trip through the VMM.
  virtual Status AddIrqFd(uint32_t gsi, int event_fd) = 0;
  virtual Status RemoveIrqFd(uint32_t gsi, int event_fd) = 0;
  // Delivers one message-signalled interrupt (PCI MSI/MSI-X) now.
  virtual Status SignalMsi(uint64_t address, uint32_t data) = 0;
  // Routes a new GSI to the MSI message (address, data), for use with AddIrqFd; returns it.
  virtual Result<uint32_t> AddMsiRoute(uint64_t address, uint32_t data) = 0;

  // Connects or disconnects the PIT's counter 0 from IRQ 0: an HPET in legacy-replacement
  // mode owns IRQ 0 meanwhile (IA-PC HPET 1.0a, 2.3.9.2.2), as QEMU silences its PIT.
  virtual Status SetPitIrqEnabled(bool /*enabled*/) {
    return Fail("the {} accelerator cannot silence its PIT for the HPET", accelerator_name());
  }

  // Snapshots: the interrupt controllers, PIT and clock the accelerator emulates.
  virtual Result<VmSavedState> SaveState() {
    return Fail("VM snapshots are not supported by the {} accelerator", accelerator_name());
  }
  virtual Status RestoreState(const VmSavedState& /*state*/) {
    return Fail("VM restore is not supported by the {} accelerator", accelerator_name());
  }
  // Diff snapshots: starts tracking the pages the guest writes in every region MapMemory
  // registered, then FetchDirtyPages returns, per region in MapMemory's order, a bitmap of
  // the 4 KiB pages written since the previous fetch (or the start) and clears it.
  virtual Status StartDirtyLog() {
    return Fail("dirty-page tracking is not supported by the {} accelerator", accelerator_name());
  }
  virtual Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() {
    return Fail("dirty-page tracking is not supported by the {} accelerator", accelerator_name());
  }

 protected:
  virtual std::string accelerator_name() const { return "this"; }
};

class Accelerator {
 public:
  virtual ~Accelerator() = default;
  virtual std::string name() const = 0;
  virtual Result<std::unique_ptr<Vm>> CreateVm(int vcpu_count) = 0;
  virtual int max_vcpus() const = 0;
};

}  // namespace vireo::accel
