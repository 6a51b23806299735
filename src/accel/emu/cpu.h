// The software CPU's architectural state. Plain data: the accelerator wrapper (later) maps
// accel::Registers / SpecialRegisters / MSRs onto it, so snapshots read the same as KVM's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

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
inline constexpr uint64_t kCr0Mp = 1u << 1;
inline constexpr uint64_t kCr0Em = 1u << 2;
inline constexpr uint64_t kCr0Ts = 1u << 3;
inline constexpr uint64_t kCr0Ne = 1u << 5;
inline constexpr uint64_t kCr0Wp = 1u << 16;
inline constexpr uint64_t kCr0Am = 1u << 18;
inline constexpr uint64_t kDr6SingleStep = 1u << 14;  // DR6.BS
inline constexpr uint64_t kCr0Pg = 1u << 31;
inline constexpr uint64_t kCr4De = 1u << 3;
inline constexpr uint64_t kCr4Pse = 1u << 4;
inline constexpr uint64_t kCr4Pae = 1u << 5;
inline constexpr uint64_t kCr4Pge = 1u << 7;
inline constexpr uint64_t kCr4Osfxsr = 1u << 9;
inline constexpr uint64_t kCr4Osxmmexcpt = 1u << 10;
inline constexpr uint64_t kCr4Osxsave = 1u << 18;
inline constexpr uint64_t kCr4Smep = 1u << 20;
inline constexpr uint64_t kEferSce = 1u << 0;
inline constexpr uint64_t kEferLme = 1u << 8;
inline constexpr uint64_t kEferLma = 1u << 10;
inline constexpr uint64_t kEferNxe = 1u << 11;

// MSR indices the CPU keeps (SDM Vol. 4).
inline constexpr uint32_t kMsrTsc = 0x10;
inline constexpr uint32_t kMsrApicBase = 0x1b;
inline constexpr uint32_t kMsrSysenterCs = 0x174;
inline constexpr uint32_t kMsrSysenterEsp = 0x175;
inline constexpr uint32_t kMsrSysenterEip = 0x176;
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
  uint64_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
  uint64_t apic_base = 0xfee00900;       // BSP, enabled (SDM Vol. 3 10.4.4)
  uint64_t pat = 0x0007040600070406ull;  // power-on default (SDM Vol. 3 11.12.4)
  uint64_t mtrr_def_type = 0;
  uint64_t misc_enable = 1;  // fast strings
};

// x87/SSE state in FXSAVE layout (SDM Vol. 1 Table 10-2), kept as the image FXSAVE writes:
// the one representation, so FXSAVE/FXRSTOR and get/set state agree byte for byte. Power-on
// values: FCW 0x40, MXCSR 0x1f80 (SDM Vol. 3 Table 9-1).
struct alignas(16) FxState {
  // Byte offsets in the image.
  static constexpr size_t kFcw = 0, kFsw = 2, kFtw = 4, kFop = 6, kFip = 8, kFdp = 16;
  static constexpr size_t kMxcsr = 24, kMxcsrMaskOffset = 28, kSt = 32, kXmm = 160;
  // MXCSR bits this CPU implements (FXSAVE's MXCSR_MASK on the AMD EPYC harness host: DAZ
  // and AMD's misaligned-SSE bit MM, 17); a 1 elsewhere makes LDMXCSR/FXRSTOR #GP(0).
  static constexpr uint32_t kMxcsrMask = 0x2ffff;
  static constexpr uint32_t kMxcsrMm = 1u << 17;

  FxState() {
    set_fcw(0x40);
    set_mxcsr(0x1f80);
    Put<uint32_t>(kMxcsrMaskOffset, kMxcsrMask);
  }

  uint16_t fcw() const { return Get<uint16_t>(kFcw); }
  uint16_t fsw() const { return Get<uint16_t>(kFsw); }
  uint8_t ftw() const { return image[kFtw]; }  // abridged: 1 bit per register, 1 = valid
  uint32_t mxcsr() const { return Get<uint32_t>(kMxcsr); }
  void set_fcw(uint16_t v) { Put(kFcw, v); }
  void set_fsw(uint16_t v) { Put(kFsw, v); }
  void set_ftw(uint8_t v) { image[kFtw] = v; }
  void set_mxcsr(uint32_t v) { Put(kMxcsr, v); }
  // XMM register i (0-15) as 16 little-endian bytes; ST(i)/MMi slots as 16 (80 bits used).
  uint8_t* xmm(int i) { return &image[kXmm + 16 * i]; }
  const uint8_t* xmm(int i) const { return &image[kXmm + 16 * i]; }
  uint8_t* st(int i) { return &image[kSt + 16 * i]; }
  const uint8_t* st(int i) const { return &image[kSt + 16 * i]; }

  template <typename T>
  T Get(size_t offset) const {
    T v;
    std::memcpy(&v, &image[offset], sizeof(T));
    return v;
  }
  template <typename T>
  void Put(size_t offset, T v) {
    std::memcpy(&image[offset], &v, sizeof(T));
  }

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
  // PAE paging's PDPTE registers, loaded by MOV CR3/CR0/CR4 (SDM Vol. 3 4.4.1).
  std::array<uint64_t, 4> pdpte{};
  std::array<uint64_t, 8> dr{0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400};
  uint64_t xcr0 = 1;
  Msrs msr;
  FxState fx;
  // STI (with IF clear) or MOV/POP SS: no interrupt before the next instruction retires
  // (SDM Vol. 3 6.8.3, Vol. 2 "STI").
  bool interrupt_shadow = false;
  // An NMI handler is running: further NMIs wait for the next IRET (SDM Vol. 3 6.7.1).
  bool nmi_blocked = false;

  int cpl() const { return seg[kCs].dpl; }
  bool long_mode() const { return (efer & kEferLma) != 0; }
  CpuMode mode() const {
    if (long_mode() && seg[kCs].l) return CpuMode::kLong64;
    if ((cr0 & kCr0Pe) && seg[kCs].db) return CpuMode::kProtected32;
    return CpuMode::kReal16;
  }
};

}  // namespace vireo::emu
