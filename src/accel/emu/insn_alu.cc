// Integer arithmetic: the eight ALU operations in every form, TEST, INC/DEC, NOT/NEG,
// MUL/IMUL/DIV/IDIV, CBW/CWD (SDM Vol. 2; flags per Vol. 1 Appendix A).
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

enum AluOp { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp };

// One ALU operation; records its flags; returns the result (CMP's is not written back).
uint64_t Alu(Flags& f, int op, int size_log, uint64_t dst, uint64_t src) {
  const uint64_t mask = SizeMask(size_log);
  dst &= mask;
  src &= mask;
  uint64_t r;
  switch (op) {
    case kAdd:
      r = (dst + src) & mask;
      f.Record(FlagOp::kAdd, size_log, dst, src, r);
      return r;
    case kAdc: {
      const bool c = f.cf();
      r = (dst + src + c) & mask;
      f.Record(FlagOp::kAdc, size_log, dst, src, r, c);
      return r;
    }
    case kSbb: {
      const bool c = f.cf();
      r = (dst - src - c) & mask;
      f.Record(FlagOp::kSbb, size_log, dst, src, r, c);
      return r;
    }
    case kOr:
      r = dst | src;
      break;
    case kAnd:
      r = dst & src;
      break;
    case kXor:
      r = dst ^ src;
      break;
    default:  // SUB, CMP
      r = (dst - src) & mask;
      f.Record(FlagOp::kSub, size_log, dst, src, r);
      return r;
  }
  f.Record(FlagOp::kLogic, size_log, dst, src, r);
  return r;
}

// 00-3D: op << 3 | form; forms 0-3 are Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev; 4-5 are AL/rAX,imm.
StepStatus AluClassic(Interpreter& cpu, const DecodedInsn& insn) {
  const int op = (insn.opcode() >> 3) & 7;
  const int form = insn.opcode() & 7;
  const int size = OpSize(insn);
  Flags& f = cpu.state().flags;
  if (form >= 4) {
    uint64_t r = Alu(f, op, size, cpu.Gpr(kRax, size), insn.imm());
    if (op != kCmp) cpu.SetGpr(kRax, size, r);
    return StepStatus::kOk;
  }
  uint64_t rm;
  if (!cpu.ReadRm(insn, size, &rm)) return cpu.MemoryFault();
  const uint64_t reg = cpu.Reg(insn.reg(), size, insn.rex());
  if (form < 2) {
    uint64_t r = Alu(f, op, size, rm, reg);
    if (op != kCmp && !cpu.WriteRm(insn, size, r)) return cpu.MemoryFault();
  } else {
    uint64_t r = Alu(f, op, size, reg, rm);
    if (op != kCmp) cpu.SetReg(insn.reg(), size, insn.rex(), r);
  }
  return StepStatus::kOk;
}

// 80/81/82/83: group 1, Eb/Ev with an immediate.
StepStatus AluGroup1(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  uint64_t rm;
  if (!cpu.ReadRm(insn, size, &rm)) return cpu.MemoryFault();
  const int op = insn.group_op();
  uint64_t r = Alu(cpu.state().flags, op, size, rm, insn.imm());
  if (op != kCmp && !cpu.WriteRm(insn, size, r)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus TestRmReg(Interpreter& cpu, const DecodedInsn& insn) {  // 84/85
  const int size = OpSize(insn);
  uint64_t rm;
  if (!cpu.ReadRm(insn, size, &rm)) return cpu.MemoryFault();
  Alu(cpu.state().flags, kAnd, size, rm, cpu.Reg(insn.reg(), size, insn.rex()));
  return StepStatus::kOk;
}

StepStatus TestAccImm(Interpreter& cpu, const DecodedInsn& insn) {  // A8/A9
  const int size = OpSize(insn);
  Alu(cpu.state().flags, kAnd, size, cpu.Gpr(kRax, size), insn.imm());
  return StepStatus::kOk;
}

StepStatus IncDecReg(Interpreter& cpu, const DecodedInsn& insn) {  // 40-4F outside 64-bit
  const int reg = insn.opcode() & 7;
  const int size = OpSize(insn);
  Flags& f = cpu.state().flags;
  const bool dec = insn.opcode() >= 0x48, cf = f.cf();
  const uint64_t v = cpu.Gpr(reg, size);
  const uint64_t r = (dec ? v - 1 : v + 1) & SizeMask(size);
  f.Record(dec ? FlagOp::kDec : FlagOp::kInc, size, v, 1, r, cf);
  cpu.SetGpr(reg, size, r);
  return StepStatus::kOk;
}

// Multiplies and divides (F6/F7 /4-/7). Operands are rDX:rAX (AH:AL for bytes).
StepStatus MulDiv(Interpreter& cpu, const DecodedInsn& insn, int size, uint64_t src) {
  Flags& f = cpu.state().flags;
  const int bits = 8 << size;
  const uint64_t mask = SizeMask(size);
  const int op = insn.group_op();
  unsigned __int128 lo_in = cpu.Gpr(kRax, size);
  unsigned __int128 hi_in = size == kSize8 ? (cpu.Gpr(kRax, kSize16) >> 8) : cpu.Gpr(kRdx, size);
  auto store = [&](uint64_t lo, uint64_t hi) {
    if (size == kSize8) {
      cpu.SetGpr(kRax, kSize16, (lo & 0xff) | ((hi & 0xff) << 8));
    } else {
      cpu.SetGpr(kRax, size, lo);
      cpu.SetGpr(kRdx, size, hi);
    }
  };
  if (op == 4 || op == 5) {
    uint64_t lo, hi;
    bool overflow;
    if (op == 4) {
      unsigned __int128 p = lo_in * src;
      lo = static_cast<uint64_t>(p) & mask;
      hi = static_cast<uint64_t>(p >> bits) & mask;
      overflow = hi != 0;
    } else {
      __int128 p = static_cast<__int128>(SignExtend(static_cast<uint64_t>(lo_in), size)) *
                   SignExtend(src, size);
      lo = static_cast<uint64_t>(p) & mask;
      hi = static_cast<uint64_t>(p >> bits) & mask;
      overflow = p != static_cast<__int128>(SignExtend(lo, size));
    }
    store(lo, hi);
    // CF=OF=overflow; SF/ZF/AF/PF are undefined: this CPU (AMD EPYC) leaves them unchanged
    // (differential harness).
    f.SetArith(overflow ? kCf | kOf : 0, kCf | kOf);
    return StepStatus::kOk;
  }
  src &= mask;
  if (src == 0) return cpu.Raise(kDivideError);
  const unsigned __int128 dividend = (hi_in << bits) | lo_in;
  uint64_t q, r;
  if (op == 6) {
    unsigned __int128 quotient = dividend / src;
    if (quotient > mask) return cpu.Raise(kDivideError);
    q = static_cast<uint64_t>(quotient);
    r = static_cast<uint64_t>(dividend % src);
  } else {
    // Sign-extend the 2*bits dividend.
    __int128 sdividend = static_cast<__int128>(dividend << (128 - 2 * bits)) >> (128 - 2 * bits);
    const __int128 divisor = SignExtend(src, size);
    const __int128 kMin = static_cast<__int128>(static_cast<unsigned __int128>(1) << 127);
    if (sdividend == kMin && divisor == -1) return cpu.Raise(kDivideError);  // no host UB
    const __int128 quotient = sdividend / divisor;
    const __int128 limit = static_cast<__int128>(1) << (bits - 1);
    if (quotient >= limit || quotient < -limit) return cpu.Raise(kDivideError);
    q = static_cast<uint64_t>(quotient) & mask;
    r = static_cast<uint64_t>(sdividend % divisor) & mask;
  }
  store(q, r);
  // All six flags are undefined after DIV/IDIV. This CPU (AMD EPYC) keeps CF and OF, clears
  // SF, ZF and PF and sets AF (differential harness).
  f.SetArith(kAf, kAf | kSf | kZf | kPf);
  return StepStatus::kOk;
}

StepStatus Group3(Interpreter& cpu, const DecodedInsn& insn) {  // F6/F7
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  Flags& f = cpu.state().flags;
  switch (insn.group_op()) {
    case 0:
    case 1:
      Alu(f, kAnd, size, v, insn.imm());
      return StepStatus::kOk;
    case 2:
      if (!cpu.WriteRm(insn, size, ~v & SizeMask(size))) return cpu.MemoryFault();
      return StepStatus::kOk;
    case 3: {
      const uint64_t r = (0 - v) & SizeMask(size);
      if (!cpu.WriteRm(insn, size, r)) return cpu.MemoryFault();
      f.Record(FlagOp::kNeg, size, 0, v, r);
      return StepStatus::kOk;
    }
    default:
      return MulDiv(cpu, insn, size, v);
  }
}

StepStatus GroupFEFF(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.group_op() >= 2) return GroupFFControl(cpu, insn);
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  const bool cf = cpu.state().flags.cf();
  const bool dec = insn.group_op() == 1;
  const uint64_t r = (dec ? v - 1 : v + 1) & SizeMask(size);
  if (!cpu.WriteRm(insn, size, r)) return cpu.MemoryFault();
  cpu.state().flags.Record(dec ? FlagOp::kDec : FlagOp::kInc, size, v, 1, r, cf);
  return StepStatus::kOk;
}

// IMUL Gv, Ev (0F AF) and IMUL Gv, Ev, imm (69, 6B).
StepStatus Imul(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  uint64_t a;
  if (!cpu.ReadRm(insn, size, &a)) return cpu.MemoryFault();
  const uint64_t b =
      insn.opcode() == (kMap0F | 0xaf) ? cpu.Reg(insn.reg(), size, insn.rex()) : insn.imm();
  const __int128 p = static_cast<__int128>(SignExtend(a, size)) * SignExtend(b, size);
  const uint64_t lo = static_cast<uint64_t>(p) & SizeMask(size);
  const bool overflow = p != static_cast<__int128>(SignExtend(lo, size));
  cpu.SetReg(insn.reg(), size, insn.rex(), lo);
  // SF/ZF/AF/PF undefined: unchanged on this CPU, as for the one-operand forms.
  cpu.state().flags.SetArith(overflow ? kCf | kOf : 0, kCf | kOf);
  return StepStatus::kOk;
}

StepStatus ConvertAcc(Interpreter& cpu, const DecodedInsn& insn) {  // 98 CBW/CWDE/CDQE
  const int size = OpSize(insn);
  cpu.SetGpr(kRax, size, static_cast<uint64_t>(SignExtend(cpu.Gpr(kRax, size - 1), size - 1)));
  return StepStatus::kOk;
}

StepStatus ConvertDx(Interpreter& cpu, const DecodedInsn& insn) {  // 99 CWD/CDQ/CQO
  const int size = OpSize(insn);
  const bool negative = cpu.Gpr(kRax, size) & SignBit(size);
  cpu.SetGpr(kRdx, size, negative ? ~0ull : 0);
  return StepStatus::kOk;
}

}  // namespace

void RegisterAlu(HandlerTable& t) {
  for (int row = 0; row < 8; ++row) {
    for (int form = 0; form < 6; ++form) t[row * 8 + form] = AluClassic;
  }
  for (int op = 0x80; op <= 0x83; ++op) t[op] = AluGroup1;
  t[0x84] = t[0x85] = TestRmReg;
  t[0xa8] = t[0xa9] = TestAccImm;
  t[0xf6] = t[0xf7] = Group3;
  t[0xfe] = t[0xff] = GroupFEFF;
  for (int op = 0x40; op <= 0x4f; ++op) t[op] = IncDecReg;  // REX in 64-bit mode
  t[0x69] = t[0x6b] = t[kMap0F | 0xaf] = Imul;
  t[0x98] = ConvertAcc;
  t[0x99] = ConvertDx;
}

}  // namespace vireo::emu
