// SSE/SSE2 floating point (SDM Vol. 2): ADD/SUB/MUL/DIV/MIN/MAX/SQRT in their PS/PD/SS/SD
// forms (0F 51, 58-5F), CMPccPS/PD/SS/SD (0F C2), UCOMISS/UCOMISD/COMISS/COMISD (0F 2E/2F)
// and the conversions CVTSI2SS/SD, CVT(T)SS/SD2SI, CVTSS2SD/CVTSD2SS, CVTPS2PD/CVTPD2PS,
// CVTDQ2PS/CVT(T)PS2DQ, CVT(T)PD2DQ/CVTDQ2PD (0F 2A/2C/2D/5A/5B/E6).
//
// IEEE results, rounding, DAZ/FTZ, NaN propagation and the exception flags must be what
// this CPU produces bit for bit, so each operation runs as the same instruction on the
// host's SSE unit, in one asm block that loads the guest's MXCSR with every exception
// masked and restores the host's (the compiler can neither move nor fold it). An exception
// the guest leaves unmasked is then raised as #XM (#UD without CR4.OSXMMEXCPT) with the
// destination unchanged and the flags recorded (SDM Vol. 1 11.5.1). RCPPS/RSQRTPS (whose
// approximations differ between CPUs), the SSE3 horizontal forms and the MMX-register
// conversions are not emulated.
#include <immintrin.h>

#include "accel/emu/sse.h"

namespace vireo::emu {
namespace {

using sse::Align;
using sse::Xmm;

// The guest's MXCSR as the host runs it: every exception masked, flags cleared, no MM.
uint32_t HostCsr(uint32_t guest) { return (guest & 0xffc0) | 0x1f80; }

// Runs `mnemonic src, dst` (AT&T order) on the host under `csr`; returns the flags raised.
#define HOST_SSE(mnemonic)                                            \
  [](Xmm& d, const Xmm& s, uint32_t csr) -> uint32_t {                \
    __m128i vd, vs;                                                   \
    std::memcpy(&vd, d.b, 16);                                        \
    std::memcpy(&vs, s.b, 16);                                        \
    uint32_t host = 0, out = 0;                                       \
    asm volatile("stmxcsr %[host]\n\tldmxcsr %[csr]\n\t" mnemonic     \
                 " %[vs], %[vd]\n\tstmxcsr %[out]\n\tldmxcsr %[host]" \
                 : [vd] "+x"(vd), [host] "+m"(host), [out] "+m"(out)  \
                 : [vs] "x"(vs), [csr] "m"(csr));                     \
    std::memcpy(d.b, &vd, 16);                                        \
    return out & 0x3f;                                                \
  }

using HostOp = uint32_t (*)(Xmm&, const Xmm&, uint32_t);

// [opcode 51, 58-5F][prefix: none 66 F3 F2]; null: no such instruction (#UD).
constexpr HostOp kArith[9][4] = {
    {HOST_SSE("sqrtps"), HOST_SSE("sqrtpd"), HOST_SSE("sqrtss"), HOST_SSE("sqrtsd")},
    {HOST_SSE("addps"), HOST_SSE("addpd"), HOST_SSE("addss"), HOST_SSE("addsd")},
    {HOST_SSE("mulps"), HOST_SSE("mulpd"), HOST_SSE("mulss"), HOST_SSE("mulsd")},
    {HOST_SSE("cvtps2pd"), HOST_SSE("cvtpd2ps"), HOST_SSE("cvtss2sd"), HOST_SSE("cvtsd2ss")},
    {HOST_SSE("cvtdq2ps"), HOST_SSE("cvtps2dq"), HOST_SSE("cvttps2dq"), nullptr},
    {HOST_SSE("subps"), HOST_SSE("subpd"), HOST_SSE("subss"), HOST_SSE("subsd")},
    {HOST_SSE("minps"), HOST_SSE("minpd"), HOST_SSE("minss"), HOST_SSE("minsd")},
    {HOST_SSE("divps"), HOST_SSE("divpd"), HOST_SSE("divss"), HOST_SSE("divsd")},
    {HOST_SSE("maxps"), HOST_SSE("maxpd"), HOST_SSE("maxss"), HOST_SSE("maxsd")},
};
// 0F E6 [none 66 F3 F2].
constexpr HostOp kE6[4] = {nullptr, HOST_SSE("cvttpd2dq"), HOST_SSE("cvtdq2pd"),
                           HOST_SSE("cvtpd2dq")};

// 0F C2 ib: [imm & 7][none 66 F3 F2] (the legacy encodings use predicates 0-7 only).
#define HOST_CMP_ROW(imm)                                                                     \
  {                                                                                           \
    HOST_SSE("cmpps $" #imm ","), HOST_SSE("cmppd $" #imm ","), HOST_SSE("cmpss $" #imm ","), \
        HOST_SSE("cmpsd $" #imm ",")                                                          \
  }
constexpr HostOp kCmp[8][4] = {HOST_CMP_ROW(0), HOST_CMP_ROW(1), HOST_CMP_ROW(2), HOST_CMP_ROW(3),
                               HOST_CMP_ROW(4), HOST_CMP_ROW(5), HOST_CMP_ROW(6), HOST_CMP_ROW(7)};
#undef HOST_CMP_ROW

#undef HOST_SSE

// The memory width of the source: full 16 bytes for packed forms, the scalar otherwise;
// CVTPS2PD and CVTDQ2PD read only 8.
int SourceBytes(uint8_t op, uint8_t prefix) {
  if ((op == 0x5a && prefix == sse::kNoPrefix) || (op == 0xe6 && prefix == sse::kF3)) return 8;
  if (op == 0xe6 || op == 0x5b) return 16;
  return prefix == sse::kF3 ? 4 : prefix == sse::kF2 ? 8 : 16;
}

// Commits `flags` raised by an operation: #XM/#UD for unmasked ones (no result), else kOk.
StepStatus Commit(Interpreter& cpu, uint32_t flags) {
  FxState& fx = cpu.state().fx;
  fx.set_mxcsr(fx.mxcsr() | flags);
  if (flags & ~(fx.mxcsr() >> 7) & 0x3f) {
    return cpu.Raise((cpu.state().cr4 & kCr4Osxmmexcpt) ? kSimdFault : kInvalidOpcode);
  }
  return StepStatus::kOk;
}

StepStatus RunHost(Interpreter& cpu, const DecodedInsn& insn, HostOp fn) {
  const uint8_t op = insn.opcode() & 0xff, p = insn.mandatory_prefix();
  if (!fn) return sse::NoSuchForm(cpu);  // F2 0F 5B, NP 0F E6
  if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
  Xmm s;
  const int bytes = SourceBytes(op, p);
  if (StepStatus st = sse::LoadRm(cpu, insn, bytes, Align::kArith, s); st != StepStatus::kOk)
    return st;
  Xmm d = sse::GetXmm(cpu, insn.reg());
  const uint32_t flags = fn(d, s, HostCsr(cpu.state().fx.mxcsr()));
  if (StepStatus st = Commit(cpu, flags); st != StepStatus::kOk) return st;
  sse::SetXmm(cpu, insn.reg(), d);
  return StepStatus::kOk;
}

StepStatus Arith(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t op = insn.opcode() & 0xff;
  const int row = op == 0x51 ? 0 : op - 0x57;
  return RunHost(cpu, insn, kArith[row][insn.mandatory_prefix()]);
}

StepStatus ConvertE6(Interpreter& cpu, const DecodedInsn& insn) {
  return RunHost(cpu, insn, kE6[insn.mandatory_prefix()]);
}

StepStatus Compare(Interpreter& cpu, const DecodedInsn& insn) {
  return RunHost(cpu, insn, kCmp[insn.imm() & 7][insn.mandatory_prefix()]);
}

// 0F 2E/2F: UCOMISS/COMISS, 66: UCOMISD/COMISD. ZF PF CF from the comparison (unordered:
// all three), OF SF AF cleared; COMIS* also flags QNaN operands invalid (the host does).
StepStatus CompareScalar(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p != sse::kNoPrefix && p != sse::k66) return sse::NoSuchForm(cpu);
  if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
  Xmm s;
  if (StepStatus st = sse::LoadRm(cpu, insn, p == sse::k66 ? 8 : 4, Align::kNone, s);
      st != StepStatus::kOk)
    return st;
  const Xmm d = sse::GetXmm(cpu, insn.reg());
  __m128i vd, vs;
  std::memcpy(&vd, d.b, 16);
  std::memcpy(&vs, s.b, 16);
  uint32_t host = 0, out = 0;
  const uint32_t csr = HostCsr(cpu.state().fx.mxcsr());
  uint8_t zf, pf, cf;
  const bool ordered_only = (insn.opcode() & 0xff) == 0x2f;
#define HOST_COMI(mnemonic)                                                                      \
  asm volatile("stmxcsr %[host]\n\tldmxcsr %[csr]\n\t" mnemonic                                  \
               " %[vs], %[vd]\n\tsetz %[zf]\n\tsetp %[pf]\n\tsetc %[cf]\n\t"                     \
               "stmxcsr %[out]\n\tldmxcsr %[host]"                                               \
               : [host] "+m"(host), [out] "+m"(out), [zf] "=q"(zf), [pf] "=q"(pf), [cf] "=q"(cf) \
               : [vd] "x"(vd), [vs] "x"(vs), [csr] "m"(csr)                                      \
               : "cc")
  if (p == sse::k66) {
    if (ordered_only)
      HOST_COMI("comisd");
    else
      HOST_COMI("ucomisd");
  } else {
    if (ordered_only)
      HOST_COMI("comiss");
    else
      HOST_COMI("ucomiss");
  }
#undef HOST_COMI
  if (StepStatus st = Commit(cpu, out & 0x3f); st != StepStatus::kOk) return st;
  cpu.state().flags.SetArith((zf ? kZf : 0) | (pf ? kPf : 0) | (cf ? kCf : 0));
  return StepStatus::kOk;
}

// F3/F2 0F 2A: CVTSI2SS/CVTSI2SD xmm, r/m32/64 (REX.W: 64); the MMX form is not emulated.
StepStatus IntToScalar(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p != sse::kF3 && p != sse::kF2) return cpu.Unimplemented();
  if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
  const bool wide = insn.rex_w();
  uint64_t v;
  if (!cpu.ReadRm(insn, wide ? kSize64 : kSize32, &v)) return cpu.MemoryFault();
  Xmm d = sse::GetXmm(cpu, insn.reg());
  __m128i vd;
  std::memcpy(&vd, d.b, 16);
  uint32_t host = 0, out = 0;
  const uint32_t csr = HostCsr(cpu.state().fx.mxcsr());
#define HOST_CVT(mnemonic, reg)                                          \
  asm volatile("stmxcsr %[host]\n\tldmxcsr %[csr]\n\t" mnemonic " %" reg \
               "[v], %[vd]\n\tstmxcsr %[out]\n\tldmxcsr %[host]"         \
               : [vd] "+x"(vd), [host] "+m"(host), [out] "+m"(out)       \
               : [v] "r"(v), [csr] "m"(csr))
  if (p == sse::kF2) {
    if (wide)
      HOST_CVT("cvtsi2sdq", "q");
    else
      HOST_CVT("cvtsi2sdl", "k");
  } else {
    if (wide)
      HOST_CVT("cvtsi2ssq", "q");
    else
      HOST_CVT("cvtsi2ssl", "k");
  }
#undef HOST_CVT
  if (StepStatus st = Commit(cpu, out & 0x3f); st != StepStatus::kOk) return st;
  std::memcpy(d.b, &vd, 16);
  sse::SetXmm(cpu, insn.reg(), d);
  return StepStatus::kOk;
}

// F3/F2 0F 2C/2D: CVTTSS2SI/CVTTSD2SI (truncating) and CVTSS2SI/CVTSD2SI (MXCSR rounding)
// into r32/r64; out of range or NaN gives the integer indefinite with IE, as the host does.
StepStatus ScalarToInt(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p != sse::kF3 && p != sse::kF2) return cpu.Unimplemented();
  if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
  Xmm s;
  if (StepStatus st = sse::LoadRm(cpu, insn, p == sse::kF2 ? 8 : 4, Align::kNone, s);
      st != StepStatus::kOk)
    return st;
  __m128i vs;
  std::memcpy(&vs, s.b, 16);
  uint32_t host = 0, out = 0;
  const uint32_t csr = HostCsr(cpu.state().fx.mxcsr());
  const bool wide = insn.rex_w(), truncate = (insn.opcode() & 0xff) == 0x2c;
  uint64_t r = 0;
#define HOST_CVT(mnemonic, reg)                                                 \
  asm volatile("stmxcsr %[host]\n\tldmxcsr %[csr]\n\t" mnemonic " %[vs], %" reg \
               "[r]\n\tstmxcsr %[out]\n\tldmxcsr %[host]"                       \
               : [r] "+r"(r), [host] "+m"(host), [out] "+m"(out)                \
               : [vs] "x"(vs), [csr] "m"(csr))
  if (p == sse::kF2) {
    if (truncate) {
      if (wide)
        HOST_CVT("cvttsd2si", "q");
      else
        HOST_CVT("cvttsd2si", "k");
    } else {
      if (wide)
        HOST_CVT("cvtsd2si", "q");
      else
        HOST_CVT("cvtsd2si", "k");
    }
  } else {
    if (truncate) {
      if (wide)
        HOST_CVT("cvttss2si", "q");
      else
        HOST_CVT("cvttss2si", "k");
    } else {
      if (wide)
        HOST_CVT("cvtss2si", "q");
      else
        HOST_CVT("cvtss2si", "k");
    }
  }
#undef HOST_CVT
  if (StepStatus st = Commit(cpu, out & 0x3f); st != StepStatus::kOk) return st;
  cpu.SetGpr(insn.reg(), wide ? kSize64 : kSize32, r);
  return StepStatus::kOk;
}

}  // namespace

void RegisterSseFloat(HandlerTable& t) {
  t[kMap0F | 0x51] = Arith;
  for (int op = 0x58; op <= 0x5f; ++op) t[kMap0F | op] = Arith;
  t[kMap0F | 0xe6] = ConvertE6;
  t[kMap0F | 0xc2] = Compare;
  t[kMap0F | 0x2e] = CompareScalar;
  t[kMap0F | 0x2f] = CompareScalar;
  t[kMap0F | 0x2a] = IntToScalar;
  t[kMap0F | 0x2c] = ScalarToInt;
  t[kMap0F | 0x2d] = ScalarToInt;
}

}  // namespace vireo::emu
