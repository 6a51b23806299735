// EmuVcpu: one software vCPU behind the accelerator interface. Run() interprets guest code
// until an exit the VMM must see (port I/O, MMIO, shutdown, a kick), completes pending IN and
// MMIO reads on the next Run() as KVM does, waits in HLT until an interrupt or a kick (like
// KVM's in-kernel irqchip), and signals registered ioeventfds without exiting.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "accel/accelerator.h"
#include "accel/emu/cpu.h"
#include "accel/emu/interpreter.h"

namespace vireo::emu {

class EmuVm;

class EmuVcpu final : public accel::Vcpu, private CpuEnvironment {
 public:
  EmuVcpu(int id, EmuVm& vm, const GuestMemory& memory, DirtyLog* dirty_log);
  // Logs the instructions retired (with --verbose): the software CPU's own work counter.
  ~EmuVcpu() override;

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
  Status SetupLocalApic() override;
  std::optional<uint64_t> TranslateAddress(uint64_t linear) override;
  Status InjectInterrupt(uint8_t vector) override;
  Status InjectNmi() override;
  // The platform's interrupt controllers have something for this vCPU: look again (wakes
  // HLT). Any thread.
  void WakeForInterrupt();
  // The accelerator-neutral state (accel/vcpu_state.h): a snapshot taken on KVM restores
  // here and back. What the software CPU lacks (a local APIC, MSRs it does not emulate) is
  // left out of a save and skipped, with a log line, on restore.
  Result<accel::VcpuSavedState> SaveState() override;
  Status RestoreState(const accel::VcpuSavedState& state) override;
  int id() const override { return id_; }

  // Guest instructions retired so far (for benchmarks and tests).
  uint64_t instructions() const { return instructions_; }
  const CpuState& cpu_state() const { return state_; }

 protected:
  std::string accelerator_name() const override { return "emu"; }

 private:
  // CpuEnvironment: CPUID from the table SetCpuid gave, RDTSC from the host's TSC.
  void Cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) override;
  uint64_t ReadTsc() override;
  // The platform's local APIC MSRs (EmuPlatform::ReadMsr).
  bool ReadApicMsr(uint32_t index, uint64_t* value) override;
  bool WriteApicMsr(uint32_t index, uint64_t value, uint64_t tsc) override;
  void ApicBaseChanged(uint64_t apic_base) override;
  // RDTSC's value for the guest: the host TSC plus IA32_TSC's offset.
  uint64_t GuestTsc() { return ReadTsc() + state_.msr.tsc_offset; }

  accel::VcpuExit DataExit(accel::ExitReason reason, bool is_write, uint64_t address, uint32_t size,
                           uint64_t data);
  accel::VcpuExit InternalError(const char* description);
  // Delivers a waiting NMI or interrupt when the guest can take it. False on triple fault.
  bool DeliverPendingEvents();
  // Sleeps on events_ while it is 0, until `deadline_ns` on the platform clock (UINT64_MAX: none).
  void WaitForEvent(uint64_t deadline_ns);
  void WakeRunLoop();
  // INIT and SIPI from the local APIC (SDM Vol. 3 9.4, 10.1): INIT puts the vCPU in its
  // INIT state, waiting for a start-up IPI; a SIPI then starts it in real mode at
  // vector << 12. Called between slices on the vCPU's own thread.
  void TakeStartupIpis();
  void EnterInitState();
  void StartFromSipi(uint8_t vector);
  // A port or MMIO access the platform's controllers claim; true when handled.
  bool PlatformIo(bool mmio, bool is_write, uint64_t address, uint32_t size, uint64_t* data);

  // Run() waits on events_; these bits wake it.
  static constexpr uint32_t kEventKick = 1;
  static constexpr uint32_t kEventInterrupt = 2;
  // Instructions per Interpreter::Run call: how often a kick or interrupt is noticed.
  static constexpr uint64_t kSlice = 4096;

  enum class PendingExit : uint8_t { kNone, kIn, kMmioRead };

  int id_;
  EmuVm& vm_;
  const GuestMemory& memory_;
  CpuState state_;
  Interpreter interp_;
  std::vector<accel::CpuidEntry> cpuid_;
  std::atomic<uint32_t> events_{0};
  std::atomic<int> pending_vector_{-1};
  std::atomic<bool> pending_nmi_{false};
  PendingExit pending_exit_ = PendingExit::kNone;
  bool halted_ = false;
  // kRunnable (halted_ says whether in HLT), or an AP waiting for INIT (kUninitialized) or
  // for a SIPI (kInitReceived). Owned by the vCPU thread.
  accel::MpState mp_state_ = accel::MpState::kRunnable;
  uint64_t instructions_ = 0;
  alignas(8) std::array<uint8_t, 8> exit_data_{};
};

}  // namespace vireo::emu
