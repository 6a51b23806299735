// The software CPU's architectural state. Plain data: the accelerator wrapper (later) maps
// accel::Registers / SpecialRegisters / MSRs onto it, so snapshots read the same as KVM's.
#pragma once

#include <array>
#include <cstdint>

#include "accel/cpu_state.h"
#include "accel/emu/decoded_insn.h"
#include "accel/emu/flags.h"

namespace vireo::emu {

// GPR numbers in ModRM encoding order.
enum Gpr : uint8_t {
  kRax,
  kRcx,
  kRdx,
  kRbx,
  kRsp,
  kRbp,
  kRsi,
  kRdi,
  kR8,
  kR9,
  kR10,
  kR11,
  kR12,
  kR13,
  kR14,
  kR15,
};

// Control-register bits the interpreter looks at (SDM Vol. 3 2.5).
inline constexpr uint64_t kCr0Pe = 1u << 0;
inline constexpr uint64_t kCr0Wp = 1u << 16;
inline constexpr uint64_t kCr0Pg = 1u << 31;
inline constexpr uint64_t kCr4Pae = 1u << 5;
inline constexpr uint64_t kCr4Pge = 1u << 7;
inline constexpr uint64_t kCr4Osfxsr = 1u << 9;
inline constexpr uint64_t kCr4Smep = 1u << 20;
inline constexpr uint64_t kEferSce = 1u << 0;
inline constexpr uint64_t kEferLme = 1u << 8;
inline constexpr uint64_t kEferLma = 1u << 10;
inline constexpr uint64_t kEferNxe = 1u << 11;

// MSR indices the CPU keeps (SDM Vol. 4).
inline constexpr uint32_t kMsrTsc = 0x10;
inline constexpr uint32_t kMsrApicBase = 0x1b;
inline constexpr uint32_t kMsrMiscEnable = 0x1a0;
inline constexpr uint32_t kMsrPat = 0x277;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrEfer = 0xc0000080;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSfmask = 0xc0000084;
inline constexpr uint32_t kMsrFsBase = 0xc0000100;
inline constexpr uint32_t kMsrGsBase = 0xc0000101;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
inline constexpr uint32_t kMsrTscAux = 0xc0000103;

struct Msrs {
  uint64_t star = 0, lstar = 0, cstar = 0, sfmask = 0, kernel_gs_base = 0;
  uint64_t tsc_offset = 0, tsc_aux = 0;
  uint64_t apic_base = 0xfee00900;       // BSP, enabled (SDM Vol. 3 10.4.4)
  uint64_t pat = 0x0007040600070406ull;  // power-on default (SDM Vol. 3 11.12.4)
  uint64_t mtrr_def_type = 0;
  uint64_t misc_enable = 1;  // fast strings
};

// x87/SSE state in FXSAVE layout (SDM Vol. 1 Table 10-2), kept as the image FXSAVE writes.
struct alignas(16) FxState {
  std::array<uint8_t, 512> image{};
};

struct CpuState {
  std::array<uint64_t, 16> gpr{};
  uint64_t rip = 0xfff0;
  Flags flags;
  // ES CS SS DS FS GS in encoding order, with hidden parts.
  std::array<accel::Segment, 6> seg{};
  accel::Segment ldtr, tr;
  accel::DescriptorTable gdtr, idtr;
  uint64_t cr0 = 0x60000010, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
  uint64_t efer = 0;
  std::array<uint64_t, 8> dr{0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400};
  uint64_t xcr0 = 1;
  Msrs msr;
  FxState fx;
  // STI (with IF clear) or MOV/POP SS: no interrupt before the next instruction retires
  // (SDM Vol. 3 6.8.3, Vol. 2 "STI").
  bool interrupt_shadow = false;

  int cpl() const { return seg[kCs].dpl; }
  bool long_mode() const { return (efer & kEferLma) != 0; }
  CpuMode mode() const {
    if (long_mode() && seg[kCs].l) return CpuMode::kLong64;
    if ((cr0 & kCr0Pe) && seg[kCs].db) return CpuMode::kProtected32;
    return CpuMode::kReal16;
  }
};

}  // namespace vireo::emu
