// The two machines of the differential harness, set up identically: a KVM vCPU (the real
// CPU: this host runs guest CPL3 code natively) and the software CPU. Both get 64-bit mode,
// CPL3, 4-level paging identity-mapping the first 16 MiB (the first 2 MiB through a page
// table whose first 1 MiB, the page tables and GDT included, is supervisor-only), and a 2 MiB user
// page at kMmioPage that is not RAM. A case is some instruction bytes followed by the terminator
// `mov [kMmioPage], al` (A2 moffs64): an MMIO exit on both machines, with RIP past it.
// The x87/SSE state goes in and comes out with every case (KVM_SET_XSAVE / KVM_GET_XSAVE).
// With an empty IDT any exception triple-faults KVM (a shutdown exit) and is an exception
// status in the emulator; the harness compares "both faulted" there.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "accel/accelerator.h"
#include "accel/emu/interpreter.h"
#include "accel/kvm/kvm_vcpu.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::emu_diff {

inline constexpr uint64_t kCodeAddr = 0x100000;
// Compared after each case; holds the stack too (RSP starts at kStackTop), so every memory
// write a generated case can make lands here.
inline constexpr uint64_t kScratchAddr = 0x200000;
inline constexpr uint64_t kScratchSize = 8192;
inline constexpr uint64_t kStackTop = kScratchAddr + 0x1800;
inline constexpr uint64_t kMmioPage = 0x20000000;

// The state a case starts from and the state it ends in.
struct CaseState {
  std::array<uint64_t, 16> gpr{};
  uint64_t rip = kCodeAddr;
  uint64_t rflags = 0x202;
  // x87/SSE state (FCW, FSW, FTW, ST0-7, MXCSR, XMM0-15) as an FXSAVE image: loaded into KVM
  // with KVM_SET_XSAVE and read back with KVM_GET_XSAVE; the emulator keeps the image itself.
  emu::FxState fx;
};

enum class Outcome : uint8_t { kCompleted, kFaulted, kOther };

struct CaseResult {
  Outcome outcome = Outcome::kOther;
  CaseState state;
  std::array<uint8_t, kScratchSize> scratch{};
  std::string detail;  // what "kOther" was
};

class Cpl3Machines {
 public:
  static Result<std::unique_ptr<Cpl3Machines>> Create();

  // Runs the case (code + terminator) from `start` with `scratch` on both machines.
  CaseResult RunKvm(std::span<const uint8_t> code, const CaseState& start,
                    std::span<const uint8_t> scratch);
  CaseResult RunEmu(std::span<const uint8_t> code, const CaseState& start,
                    std::span<const uint8_t> scratch);

 private:
  Cpl3Machines() = default;
  Status WriteTables();
  void LoadCase(std::span<const uint8_t> code, std::span<const uint8_t> scratch);
  void ReadScratch(CaseResult& result);

  std::unique_ptr<accel::Accelerator> kvm_;
  std::unique_ptr<accel::Vm> vm_;
  std::optional<GuestMemory> memory_;
  std::unique_ptr<accel::Vcpu> vcpu_;
  kvm::KvmVcpu* kvm_vcpu_ = nullptr;  // vcpu_ as KVM's, for the FPU state
  accel::SpecialRegisters sregs_;
  bool sregs_dirty_ = true;
};

}  // namespace vireo::emu_diff
