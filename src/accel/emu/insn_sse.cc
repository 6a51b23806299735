// SSE/SSE2 data movement and bitwise/shuffle instructions on XMM registers (SDM Vol. 2):
// MOVUPS/MOVUPD/MOVSS/MOVSD (0F 10/11), MOVLPS/MOVHLPS/MOVLPD, MOVHPS/MOVLHPS/MOVHPD
// (0F 12/13/16/17), MOVSLDUP/MOVSHDUP/MOVDDUP (SSE3), UNPCKL/HPS/PD (0F 14/15),
// MOVAPS/MOVAPD (0F 28/29), MOVNTPS/MOVNTPD (0F 2B), MOVMSKPS/PD (0F 50), AND/ANDN/OR/XOR
// PS/PD (0F 54-57), MOVD/MOVQ (66 0F 6E/7E, F3 0F 7E, 66 0F D6), MOVDQA/MOVDQU (0F 6F/7F),
// PSHUFD/PSHUFLW/PSHUFHW (0F 70), MOVNTI (0F C3), PINSRW/PEXTRW (66 0F C4/C5),
// SHUFPS/SHUFPD (0F C6), PMOVMSKB (66 0F D7), MOVNTDQ (66 0F E7). Stores are made before
// registers change; a prefix that selects an instruction not here reports kUnimplemented.
#include "accel/emu/sse.h"

namespace vireo::emu {
namespace {

using sse::Align;
using sse::Xmm;

#define SSE_TRY(expr)                                                      \
  do {                                                                     \
    if (const StepStatus st_ = (expr); st_ != StepStatus::kOk) return st_; \
  } while (0)

// 0F 10/11: MOVUPS/MOVUPD (16 bytes, unaligned), MOVSS (4), MOVSD (8). A scalar load from
// memory zeroes the rest of the register; register to register merges the low lane.
StepStatus MovUps(Interpreter& cpu, const DecodedInsn& insn) {
  SSE_TRY(sse::SseCheck(cpu));
  const uint8_t p = insn.mandatory_prefix();
  const int bytes = p == sse::kF3 ? 4 : p == sse::kF2 ? 8 : 16;
  const bool store = (insn.opcode() & 1) != 0;
  if (store && !insn.is_reg_form())
    return sse::StoreMem(cpu, insn, bytes, Align::kNone, sse::GetXmm(cpu, insn.reg()));
  const int dst = store ? insn.rm() : insn.reg(), src = store ? insn.reg() : insn.rm();
  if (insn.is_reg_form()) {
    Xmm d = sse::GetXmm(cpu, dst);
    const Xmm s = sse::GetXmm(cpu, src);
    std::memcpy(d.b, s.b, bytes);
    sse::SetXmm(cpu, dst, d);
    return StepStatus::kOk;
  }
  Xmm v;
  SSE_TRY(sse::LoadRm(cpu, insn, bytes, Align::kNone, v));
  sse::SetXmm(cpu, dst, v);
  return StepStatus::kOk;
}

// 0F 12/13/16/17: the 8-byte half moves, and the SSE3 duplicating loads F3 12/16, F2 12.
StepStatus MovHalf(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t op = insn.opcode() & 0xff, p = insn.mandatory_prefix();
  const bool high = op >= 0x16, store = (op & 1) != 0;
  if (p == sse::kF3 || p == sse::kF2) {
    if (store) return sse::NoSuchForm(cpu);
    if (p == sse::kF2 && high) return cpu.Unimplemented();  // this CPU runs F2 0F 16: unknown
    SSE_TRY(sse::SseCheck(cpu));
    Xmm s, r;
    if (p == sse::kF2) {  // MOVDDUP: the low qword twice (m64 source)
      SSE_TRY(sse::LoadRm(cpu, insn, 8, Align::kNone, s));
      r.Set<uint64_t>(0, s.Get<uint64_t>(0));
      r.Set<uint64_t>(1, s.Get<uint64_t>(0));
    } else {  // MOVSLDUP / MOVSHDUP: even or odd dwords twice
      SSE_TRY(sse::LoadRm(cpu, insn, 16, Align::kArith, s));
      for (int i = 0; i < 4; ++i) r.Set<uint32_t>(i, s.Get<uint32_t>((i & ~1) + (high ? 1 : 0)));
    }
    sse::SetXmm(cpu, insn.reg(), r);
    return StepStatus::kOk;
  }
  // The register forms exist only as MOVHLPS/MOVLHPS (0F 12/16 without 66).
  if (insn.is_reg_form() && (store || p == sse::k66)) return cpu.Raise(kInvalidOpcode);
  SSE_TRY(sse::SseCheck(cpu));
  Xmm d = sse::GetXmm(cpu, insn.reg());
  if (store) {
    Xmm v;
    v.Set<uint64_t>(0, d.Get<uint64_t>(high ? 1 : 0));
    return sse::StoreMem(cpu, insn, 8, Align::kNone, v);
  }
  Xmm s;
  SSE_TRY(sse::LoadRm(cpu, insn, 8, Align::kNone, s));
  uint64_t q = s.Get<uint64_t>(0);
  if (insn.is_reg_form()) q = s.Get<uint64_t>(high ? 0 : 1);  // MOVLHPS low, MOVHLPS high
  d.Set<uint64_t>(high ? 1 : 0, q);
  sse::SetXmm(cpu, insn.reg(), d);
  return StepStatus::kOk;
}

// 0F 14/15: UNPCKLPS/UNPCKHPS (dwords) and 66: UNPCKLPD/UNPCKHPD (qwords).
StepStatus UnpackFloat(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p != sse::kNoPrefix && p != sse::k66) return sse::NoSuchForm(cpu);
  SSE_TRY(sse::SseCheck(cpu));
  Xmm s;
  SSE_TRY(sse::LoadRm(cpu, insn, 16, Align::kArith, s));
  const Xmm a = sse::GetXmm(cpu, insn.reg());
  const int base = (insn.opcode() & 1) ? 1 : 0;
  Xmm r;
  if (p == sse::k66) {
    r.Set<uint64_t>(0, a.Get<uint64_t>(base));
    r.Set<uint64_t>(1, s.Get<uint64_t>(base));
  } else {
    for (int i = 0; i < 2; ++i) {
      r.Set<uint32_t>(2 * i, a.Get<uint32_t>(2 * base + i));
      r.Set<uint32_t>(2 * i + 1, s.Get<uint32_t>(2 * base + i));
    }
  }
  sse::SetXmm(cpu, insn.reg(), r);
  return StepStatus::kOk;
}

// 0F 28/29 MOVAPS/MOVAPD, 66/F3 0F 6F/7F MOVDQA/MOVDQU: 16-byte moves, aligned or not.
StepStatus Move128(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t op = insn.opcode() & 0xff, p = insn.mandatory_prefix();
  Align align = Align::kAlways;
  if (op == 0x28 || op == 0x29) {
    if (p != sse::kNoPrefix && p != sse::k66) return sse::NoSuchForm(cpu);
  } else {
    if (p == sse::kNoPrefix) return cpu.Unimplemented();  // MMX MOVQ
    if (p == sse::kF2) return sse::NoSuchForm(cpu);
    if (p == sse::kF3) align = Align::kNone;
  }
  SSE_TRY(sse::SseCheck(cpu));
  const bool store = op == 0x29 || op == 0x7f;
  if (store && !insn.is_reg_form())
    return sse::StoreMem(cpu, insn, 16, align, sse::GetXmm(cpu, insn.reg()));
  if (store) {  // register to register, rm() <- reg()
    sse::SetXmm(cpu, insn.rm(), sse::GetXmm(cpu, insn.reg()));
    return StepStatus::kOk;
  }
  Xmm v;
  SSE_TRY(sse::LoadRm(cpu, insn, 16, align, v));
  sse::SetXmm(cpu, insn.reg(), v);
  return StepStatus::kOk;
}

// 0F 2B MOVNTPS/MOVNTPD and 66 0F E7 MOVNTDQ: aligned 16-byte stores (the non-temporal hint
// changes nothing here); register forms are #UD.
StepStatus MovNt128(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t op = insn.opcode() & 0xff, p = insn.mandatory_prefix();
  if (op == 0xe7 && (p == sse::kF2 || p == sse::kF3)) return sse::NoSuchForm(cpu);
  if (op == 0xe7 ? p != sse::k66 : (p != sse::kNoPrefix && p != sse::k66))
    return cpu.Unimplemented();  // MMX MOVNTQ, SSE4a MOVNTSS/SD
  // The SDM makes the register forms #UD; this CPU runs 66 0F E7 /r with mod=3 as something
  // undocumented (no fault), so that form is reported as not emulated rather than guessed.
  if (insn.is_reg_form()) return op == 0xe7 ? cpu.Unimplemented() : cpu.Raise(kInvalidOpcode);
  SSE_TRY(sse::SseCheck(cpu));
  return sse::StoreMem(cpu, insn, 16, Align::kAlways, sse::GetXmm(cpu, insn.reg()));
}

// 0F 50 MOVMSKPS/PD and 66 0F D7 PMOVMSKB: lane sign bits into a GPR, zero-extended.
StepStatus MoveMask(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t op = insn.opcode() & 0xff, p = insn.mandatory_prefix();
  if (p == sse::kF2 || p == sse::kF3) return sse::NoSuchForm(cpu);
  if (op == 0xd7 && p == sse::kNoPrefix) return cpu.Unimplemented();  // MMX PMOVMSKB
  if (!insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  SSE_TRY(sse::SseCheck(cpu));
  const Xmm s = sse::GetXmm(cpu, insn.rm());
  uint64_t mask = 0;
  if (op == 0xd7) {
    for (int i = 0; i < 16; ++i) mask |= static_cast<uint64_t>(s.b[i] >> 7) << i;
  } else if (p == sse::k66) {
    for (int i = 0; i < 2; ++i) mask |= (s.Get<uint64_t>(i) >> 63) << i;
  } else {
    for (int i = 0; i < 4; ++i) mask |= uint64_t{s.Get<uint32_t>(i) >> 31} << i;
  }
  cpu.SetGpr(insn.reg(), kSize64, mask);
  return StepStatus::kOk;
}

// 0F 54-57: ANDPS ANDNPS ORPS XORPS, and the PD forms with 66 (the same bits).
StepStatus LogicFloat(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p != sse::kNoPrefix && p != sse::k66) return sse::NoSuchForm(cpu);
  SSE_TRY(sse::SseCheck(cpu));
  Xmm s;
  SSE_TRY(sse::LoadRm(cpu, insn, 16, Align::kArith, s));
  Xmm d = sse::GetXmm(cpu, insn.reg());
  for (int i = 0; i < 2; ++i) {
    const uint64_t a = d.Get<uint64_t>(i), b = s.Get<uint64_t>(i);
    const uint64_t r = (insn.opcode() & 0xff) == 0x54   ? a & b
                       : (insn.opcode() & 0xff) == 0x55 ? ~a & b
                       : (insn.opcode() & 0xff) == 0x56 ? a | b
                                                        : a ^ b;
    d.Set<uint64_t>(i, r);
  }
  sse::SetXmm(cpu, insn.reg(), d);
  return StepStatus::kOk;
}

// 66 0F 6E MOVD/MOVQ xmm, r/m32/64 (REX.W: 64); zero-extended into the register.
StepStatus MovdToXmm(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.mandatory_prefix() == sse::kNoPrefix) return cpu.Unimplemented();  // MMX
  if (insn.mandatory_prefix() != sse::k66) return sse::NoSuchForm(cpu);
  SSE_TRY(sse::SseCheck(cpu));
  const int size = insn.rex_w() ? kSize64 : kSize32;
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  Xmm r;
  r.Set<uint64_t>(0, v);
  sse::SetXmm(cpu, insn.reg(), r);
  return StepStatus::kOk;
}

// 0F 7E: 66 MOVD/MOVQ r/m32/64, xmm; F3 MOVQ xmm, xmm/m64 (upper qword cleared).
StepStatus Movd7E(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p == sse::kNoPrefix) return cpu.Unimplemented();  // MMX
  if (p == sse::kF2) return sse::NoSuchForm(cpu);
  SSE_TRY(sse::SseCheck(cpu));
  if (p == sse::kF3) {
    Xmm s;
    SSE_TRY(sse::LoadRm(cpu, insn, 8, Align::kNone, s));
    Xmm r;
    r.Set<uint64_t>(0, s.Get<uint64_t>(0));
    sse::SetXmm(cpu, insn.reg(), r);
    return StepStatus::kOk;
  }
  const int size = insn.rex_w() ? kSize64 : kSize32;
  const uint64_t v = sse::GetXmm(cpu, insn.reg()).Get<uint64_t>(0) & SizeMask(size);
  if (!cpu.WriteRm(insn, size, v)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

// 66 0F D6 MOVQ xmm/m64, xmm: a register destination gets its upper qword cleared.
StepStatus MovqD6(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.mandatory_prefix() == sse::kNoPrefix) return sse::NoSuchForm(cpu);
  if (insn.mandatory_prefix() != sse::k66) return cpu.Unimplemented();  // MOVQ2DQ/MOVDQ2Q
  SSE_TRY(sse::SseCheck(cpu));
  Xmm v;
  v.Set<uint64_t>(0, sse::GetXmm(cpu, insn.reg()).Get<uint64_t>(0));
  if (!insn.is_reg_form()) return sse::StoreMem(cpu, insn, 8, Align::kNone, v);
  sse::SetXmm(cpu, insn.rm(), v);
  return StepStatus::kOk;
}

// 0F 70 ib: 66 PSHUFD (dwords), F2 PSHUFLW (low words), F3 PSHUFHW (high words).
StepStatus Pshuf(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p == sse::kNoPrefix) return cpu.Unimplemented();  // MMX PSHUFW
  SSE_TRY(sse::SseCheck(cpu));
  Xmm s;
  SSE_TRY(sse::LoadRm(cpu, insn, 16, Align::kArith, s));
  const unsigned imm = insn.imm() & 0xff;
  Xmm r = s;
  if (p == sse::k66) {
    for (int i = 0; i < 4; ++i) r.Set<uint32_t>(i, s.Get<uint32_t>((imm >> (2 * i)) & 3));
  } else {
    const int base = p == sse::kF3 ? 4 : 0;
    for (int i = 0; i < 4; ++i)
      r.Set<uint16_t>(base + i, s.Get<uint16_t>(base + ((imm >> (2 * i)) & 3)));
  }
  sse::SetXmm(cpu, insn.reg(), r);
  return StepStatus::kOk;
}

// 0F C3 MOVNTI m32/64, r32/64: a plain store (SSE2, but no XMM state: no CR0/CR4 checks).
StepStatus Movnti(Interpreter& cpu, const DecodedInsn& insn) {
  // This CPU runs MOVNTI with 66/F2/F3 too (harness: no fault); what it stores then is not
  // documented, so those report kUnimplemented.
  if (insn.mandatory_prefix() != sse::kNoPrefix) return cpu.Unimplemented();
  if (insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  const int size = insn.rex_w() ? kSize64 : kSize32;
  if (!cpu.WriteRm(insn, size, cpu.Gpr(insn.reg(), size))) return cpu.MemoryFault();
  return StepStatus::kOk;
}

// 66 0F C4 PINSRW xmm, r32/m16, ib and 66 0F C5 PEXTRW r32, xmm, ib.
StepStatus InsertExtractWord(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.mandatory_prefix() == sse::kNoPrefix) return cpu.Unimplemented();  // MMX
  if (insn.mandatory_prefix() != sse::k66) return sse::NoSuchForm(cpu);
  const bool extract = (insn.opcode() & 0xff) == 0xc5;
  if (extract && !insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  SSE_TRY(sse::SseCheck(cpu));
  const int lane = static_cast<int>(insn.imm() & 7);
  if (extract) {
    cpu.SetGpr(insn.reg(), kSize64, sse::GetXmm(cpu, insn.rm()).Get<uint16_t>(lane));
    return StepStatus::kOk;
  }
  uint64_t v;
  if (!cpu.ReadRm(insn, kSize16, &v)) return cpu.MemoryFault();
  Xmm d = sse::GetXmm(cpu, insn.reg());
  d.Set<uint16_t>(lane, static_cast<uint16_t>(v));
  sse::SetXmm(cpu, insn.reg(), d);
  return StepStatus::kOk;
}

// 0F C6 ib SHUFPS / 66 SHUFPD: low lanes from the destination, high lanes from the source.
StepStatus Shufps(Interpreter& cpu, const DecodedInsn& insn) {
  const uint8_t p = insn.mandatory_prefix();
  if (p != sse::kNoPrefix && p != sse::k66) return sse::NoSuchForm(cpu);
  SSE_TRY(sse::SseCheck(cpu));
  Xmm s;
  SSE_TRY(sse::LoadRm(cpu, insn, 16, Align::kArith, s));
  const Xmm d = sse::GetXmm(cpu, insn.reg());
  const unsigned imm = insn.imm() & 0xff;
  Xmm r;
  if (p == sse::k66) {
    r.Set<uint64_t>(0, d.Get<uint64_t>(imm & 1));
    r.Set<uint64_t>(1, s.Get<uint64_t>((imm >> 1) & 1));
  } else {
    r.Set<uint32_t>(0, d.Get<uint32_t>(imm & 3));
    r.Set<uint32_t>(1, d.Get<uint32_t>((imm >> 2) & 3));
    r.Set<uint32_t>(2, s.Get<uint32_t>((imm >> 4) & 3));
    r.Set<uint32_t>(3, s.Get<uint32_t>((imm >> 6) & 3));
  }
  sse::SetXmm(cpu, insn.reg(), r);
  return StepStatus::kOk;
}

#undef SSE_TRY

}  // namespace

void RegisterSse(HandlerTable& t) {
  t[kMap0F | 0x10] = MovUps;
  t[kMap0F | 0x11] = MovUps;
  for (int op : {0x12, 0x13, 0x16, 0x17}) t[kMap0F | op] = MovHalf;
  t[kMap0F | 0x14] = UnpackFloat;
  t[kMap0F | 0x15] = UnpackFloat;
  for (int op : {0x28, 0x29, 0x6f, 0x7f}) t[kMap0F | op] = Move128;
  t[kMap0F | 0x2b] = MovNt128;
  t[kMap0F | 0xe7] = MovNt128;
  t[kMap0F | 0x50] = MoveMask;
  t[kMap0F | 0xd7] = MoveMask;
  for (int op = 0x54; op <= 0x57; ++op) t[kMap0F | op] = LogicFloat;
  t[kMap0F | 0x6e] = MovdToXmm;
  t[kMap0F | 0x7e] = Movd7E;
  t[kMap0F | 0xd6] = MovqD6;
  t[kMap0F | 0x70] = Pshuf;
  t[kMap0F | 0xc3] = Movnti;
  t[kMap0F | 0xc4] = InsertExtractWord;
  t[kMap0F | 0xc5] = InsertExtractWord;
  t[kMap0F | 0xc6] = Shufps;
}

}  // namespace vireo::emu
