// Shared by the SSE group files (insn_sse.cc, insn_sse_int.cc) and insn_fpu.cc: the XMM
// register value type, the availability checks every SSE instruction makes first, and
// xmm/m operand access with the 16-byte alignment rules.
#pragma once

#include <cstring>

#include "accel/emu/insn_groups.h"

namespace vireo::emu::sse {

// One XMM value: 16 little-endian bytes, read and written as lanes of any integer width.
struct Xmm {
  uint8_t b[16] = {};

  template <typename T>
  T Get(int i) const {
    T v;
    std::memcpy(&v, b + i * sizeof(T), sizeof(T));
    return v;
  }
  template <typename T>
  void Set(int i, T v) {
    std::memcpy(b + i * sizeof(T), &v, sizeof(T));
  }
  template <typename T>
  static constexpr int Lanes() {
    return 16 / sizeof(T);
  }
};

inline Xmm GetXmm(Interpreter& cpu, int n) {
  Xmm x;
  std::memcpy(x.b, cpu.state().fx.xmm(n), 16);
  return x;
}
inline void SetXmm(Interpreter& cpu, int n, const Xmm& x) {
  std::memcpy(cpu.state().fx.xmm(n), x.b, 16);
}

// SSE/SSE2 instructions (SDM Vol. 2 Table 2-18/2-19, "Exception class 1-5"): #UD when
// CR0.EM is set or CR4.OSFXSR is clear, then #NM when CR0.TS is set; before any memory
// access. kOk when the instruction may run.
inline StepStatus SseCheck(Interpreter& cpu) {
  const CpuState& s = cpu.state();
  if ((s.cr0 & kCr0Em) || !(s.cr4 & kCr4Osfxsr)) return cpu.Raise(kInvalidOpcode);
  if (s.cr0 & kCr0Ts) return cpu.Raise(kDeviceNotAvailable);
  return StepStatus::kOk;
}

// How a 16-byte memory operand must be aligned (SDM Vol. 1 11.6.7 / AMD APM Vol. 1 4.3.2):
// not at all (MOVUPS/MOVDQU, and every operand of 8 bytes or less), 16 bytes unless MXCSR.MM
// (AMD misaligned-SSE mode) is set (the m128 operand of computational instructions), or 16
// bytes always (MOVAPS/MOVDQA/MOVNT*, FXSAVE/FXRSTOR).
enum class Align : uint8_t { kNone, kArith, kAlways };

// The linear address of insn's memory operand (alignment is a property of the linear
// address: FS/GS bases count in 64-bit mode, every base in legacy modes).
inline uint64_t OperandLinear(Interpreter& cpu, const DecodedInsn& insn, uint64_t ea) {
  const CpuState& s = cpu.state();
  const Seg seg = insn.segment();
  if (s.mode() == CpuMode::kLong64) return ea + ((seg == kFs || seg == kGs) ? s.seg[seg].base : 0);
  return ea + s.seg[seg].base;
}

inline bool Misaligned(Interpreter& cpu, const DecodedInsn& insn, uint64_t ea, Align align) {
  if (align == Align::kNone || (OperandLinear(cpu, insn, ea) & 15) == 0) return false;
  return align == Align::kAlways || !(cpu.state().fx.mxcsr() & FxState::kMxcsrMm);
}

// The xmm/m source of `insn`: the whole register rm(), or `bytes` from memory (zero above).
inline StepStatus LoadRm(Interpreter& cpu, const DecodedInsn& insn, int bytes, Align align,
                         Xmm& out) {
  if (insn.is_reg_form()) {
    out = GetXmm(cpu, insn.rm());
    return StepStatus::kOk;
  }
  const uint64_t ea = cpu.EffectiveAddress(insn);
  if (bytes == 16 && Misaligned(cpu, insn, ea, align)) return cpu.Raise(kGeneralProtection, 0);
  out = {};
  if (!cpu.ReadBytes(insn.segment(), ea, {out.b, static_cast<size_t>(bytes)}, insn.address_size()))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

// Stores the low `bytes` of `value` to insn's memory operand.
inline StepStatus StoreMem(Interpreter& cpu, const DecodedInsn& insn, int bytes, Align align,
                           const Xmm& value) {
  const uint64_t ea = cpu.EffectiveAddress(insn);
  if (bytes == 16 && Misaligned(cpu, insn, ea, align)) return cpu.Raise(kGeneralProtection, 0);
  if (!cpu.WriteBytes(insn.segment(), ea, {value.b, static_cast<size_t>(bytes)},
                      insn.address_size()))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

// A mandatory prefix that selects no instruction with this opcode (SDM Vol. 2 Table A-3):
// #UD, as this CPU raises it (harness-checked). Prefixes that select an instruction the
// emulator lacks (MMX forms, SSE4a, SSE3 horizontals) report kUnimplemented instead.
inline StepStatus NoSuchForm(Interpreter& cpu) { return cpu.Raise(kInvalidOpcode); }

// Mandatory prefixes as DecodedInsn reports them.
inline constexpr uint8_t kNoPrefix = 0, k66 = 1, kF3 = 2, kF2 = 3;

}  // namespace vireo::emu::sse
