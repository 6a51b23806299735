// Data movement: MOV in its forms, MOVZX/MOVSX/MOVSXD, LEA, XCHG, CMPXCHG(8B/16B), XADD,
// BSWAP, CMOVcc, SETcc. Memory is written before registers so a fault leaves no trace.
// LOCK needs no extra work yet: one vCPU runs at a time (atomicity across vCPU threads
// comes with SMP).
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

StepStatus MovRmReg(Interpreter& cpu, const DecodedInsn& insn) {  // 88/89
  const int size = OpSize(insn);
  if (!cpu.WriteRm(insn, size, cpu.Reg(insn.reg(), size, insn.rex()))) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus MovRegRm(Interpreter& cpu, const DecodedInsn& insn) {  // 8A/8B
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  cpu.SetReg(insn.reg(), size, insn.rex(), v);
  return StepStatus::kOk;
}

StepStatus MovRmImm(Interpreter& cpu, const DecodedInsn& insn) {  // C6/C7 /0
  if (insn.group_op() != 0) return cpu.Raise(kInvalidOpcode);
  if (!cpu.WriteRm(insn, OpSize(insn), insn.imm())) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus MovRegImm(Interpreter& cpu, const DecodedInsn& insn) {  // B0-BF
  const int reg = (insn.opcode() & 7) | ((insn.rex_bits() & 1) << 3);
  cpu.SetReg(reg, OpSize(insn), insn.rex(), insn.imm());
  return StepStatus::kOk;
}

StepStatus MovMoffs(Interpreter& cpu, const DecodedInsn& insn) {  // A0-A3
  const int size = OpSize(insn);
  if (insn.opcode() <= 0xa1) {
    uint64_t v;
    if (!cpu.Read(insn.segment(), insn.imm(), size, &v, insn.address_size()))
      return cpu.MemoryFault();
    cpu.SetGpr(kRax, size, v);
    return StepStatus::kOk;
  }
  if (!cpu.Write(insn.segment(), insn.imm(), size, cpu.Gpr(kRax, size), insn.address_size()))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus Lea(Interpreter& cpu, const DecodedInsn& insn) {  // 8D
  if (insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  // The address is computed at address size, then truncated/zero-extended to operand size.
  cpu.SetReg(insn.reg(), OpSize(insn), true, cpu.EffectiveAddress(insn));
  return StepStatus::kOk;
}

// MOVZX/MOVSX (0F B6 B7 BE BF) and MOVSXD (63).
StepStatus MovExtend(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  const uint16_t op = insn.opcode();
  if (op == 0x63 && cpu.state().mode() != CpuMode::kLong64) return Arpl(cpu, insn);  // legacy 63
  const int src_size = op == 0x63 ? kSize32 : (op & 1) ? kSize16 : kSize8;
  uint64_t v;
  if (!cpu.ReadRm(insn, src_size, &v)) return cpu.MemoryFault();
  const bool sign = op == 0x63 || op >= (kMap0F | 0xbe);
  if (sign) v = static_cast<uint64_t>(SignExtend(v, src_size));
  cpu.SetReg(insn.reg(), size, insn.rex(), v);
  return StepStatus::kOk;
}

StepStatus XchgRm(Interpreter& cpu, const DecodedInsn& insn) {  // 86/87
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  if (!cpu.WriteRm(insn, size, cpu.Reg(insn.reg(), size, insn.rex()))) return cpu.MemoryFault();
  cpu.SetReg(insn.reg(), size, insn.rex(), v);
  return StepStatus::kOk;
}

StepStatus XchgAcc(Interpreter& cpu, const DecodedInsn& insn) {  // 90-97
  const int reg = (insn.opcode() & 7) | ((insn.rex_bits() & 1) << 3);
  if (reg == kRax) {
    if (insn.rep()) return StepStatus::kOk;  // PAUSE (F3 90)
    return StepStatus::kOk;                  // NOP: 90 does not zero-extend EAX
  }
  const int size = OpSize(insn);
  const uint64_t a = cpu.Gpr(kRax, size);
  cpu.SetGpr(kRax, size, cpu.Gpr(reg, size));
  cpu.SetGpr(reg, size, a);
  return StepStatus::kOk;
}

StepStatus Cmpxchg(Interpreter& cpu, const DecodedInsn& insn) {  // 0F B0/B1
  const int size = OpSize(insn);
  uint64_t dst;
  if (!cpu.ReadRm(insn, size, &dst)) return cpu.MemoryFault();
  const uint64_t acc = cpu.Gpr(kRax, size);
  const uint64_t diff = (acc - dst) & SizeMask(size);
  if (acc == dst) {
    if (!cpu.WriteRm(insn, size, cpu.Reg(insn.reg(), size, insn.rex()))) return cpu.MemoryFault();
  } else {
    // The destination is written back with its own value (a locked cycle), then rAX loads it.
    if (!insn.is_reg_form() && !cpu.WriteRm(insn, size, dst)) return cpu.MemoryFault();
    cpu.SetGpr(kRax, size, dst);
  }
  cpu.state().flags.Record(FlagOp::kSub, size, acc, dst, diff);
  return StepStatus::kOk;
}

StepStatus Xadd(Interpreter& cpu, const DecodedInsn& insn) {  // 0F C0/C1
  const int size = OpSize(insn);
  uint64_t dst;
  if (!cpu.ReadRm(insn, size, &dst)) return cpu.MemoryFault();
  const uint64_t src = cpu.Reg(insn.reg(), size, insn.rex());
  const uint64_t sum = (dst + src) & SizeMask(size);
  if (!insn.is_reg_form() && !cpu.WriteRm(insn, size, sum)) return cpu.MemoryFault();
  cpu.SetReg(insn.reg(), size, insn.rex(), dst);
  if (insn.is_reg_form()) cpu.WriteRm(insn, size, sum);  // dest wins when both are registers
  cpu.state().flags.Record(FlagOp::kAdd, size, dst, src, sum);
  return StepStatus::kOk;
}

StepStatus Group9(Interpreter& cpu, const DecodedInsn& insn) {  // 0F C7: CMPXCHG8B/16B
  if (insn.group_op() != 1 || insn.is_reg_form()) return cpu.Unimplemented();
  const bool wide = insn.rex_w();
  const uint64_t ea = cpu.EffectiveAddress(insn);
  const int half = wide ? kSize64 : kSize32;
  const uint64_t step = wide ? 8 : 4;
  if (wide && (ea & 15)) return cpu.Raise(kGeneralProtection, 0);  // 16B needs alignment
  uint64_t lo, hi;
  if (!cpu.Read(insn.segment(), ea, half, &lo, insn.address_size()) ||
      !cpu.Read(insn.segment(), ea + step, half, &hi, insn.address_size()))
    return cpu.MemoryFault();
  const bool equal = lo == cpu.Gpr(kRax, half) && hi == cpu.Gpr(kRdx, half);
  const uint64_t new_lo = equal ? cpu.Gpr(kRbx, half) : lo;
  const uint64_t new_hi = equal ? cpu.Gpr(kRcx, half) : hi;
  if (!cpu.Write(insn.segment(), ea, half, new_lo, insn.address_size()) ||
      !cpu.Write(insn.segment(), ea + step, half, new_hi, insn.address_size()))
    return cpu.MemoryFault();
  if (!equal) {
    cpu.SetGpr(kRax, half, lo);
    cpu.SetGpr(kRdx, half, hi);
  }
  cpu.state().flags.SetArith(equal ? kZf : 0, kZf);
  return StepStatus::kOk;
}

StepStatus Bswap(Interpreter& cpu, const DecodedInsn& insn) {  // 0F C8-CF
  const int reg = (insn.opcode() & 7) | ((insn.rex_bits() & 1) << 3);
  const int size = OpSize(insn);
  const uint64_t v = cpu.Gpr(reg, size);
  if (size == kSize64) {
    cpu.SetGpr(reg, size, __builtin_bswap64(v));
  } else if (size == kSize32) {
    cpu.SetGpr(reg, size, __builtin_bswap32(static_cast<uint32_t>(v)));
  } else {
    cpu.SetGpr(reg, size, 0);  // undefined in the SDM; this CPU clears the low word
  }
  return StepStatus::kOk;
}

StepStatus Cmov(Interpreter& cpu, const DecodedInsn& insn) {  // 0F 40-4F
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();  // the read happens regardless
  if (cpu.state().flags.Condition(insn.opcode() & 0xf)) {
    cpu.SetReg(insn.reg(), size, insn.rex(), v);
  } else if (size == kSize32) {
    cpu.SetReg(insn.reg(), size, true, cpu.Gpr(insn.reg(), kSize32));  // zero-extends anyway
  }
  return StepStatus::kOk;
}

StepStatus Setcc(Interpreter& cpu, const DecodedInsn& insn) {  // 0F 90-9F
  const bool c = cpu.state().flags.Condition(insn.opcode() & 0xf);
  if (!cpu.WriteRm(insn, kSize8, c ? 1 : 0)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus Xlat(Interpreter& cpu, const DecodedInsn& insn) {  // D7: AL = [rBX + AL]
  const int asize = insn.address_size();
  const uint64_t ea = (cpu.Gpr(kRbx, asize) + cpu.Gpr(kRax, kSize8)) & SizeMask(asize);
  uint64_t v;
  if (!cpu.Read(insn.segment(), ea, kSize8, &v, asize)) return cpu.MemoryFault();
  cpu.SetGpr(kRax, kSize8, v);
  return StepStatus::kOk;
}

// 8C: MOV r/m, Sreg. A memory destination is always 16 bits; a register destination takes
// the operand size, zero-extended (SDM "MOV": the upper bits are cleared in 64-bit mode and
// on this CPU in every mode, per the harness).
StepStatus MovFromSreg(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.group_op() > 5) return cpu.Raise(kInvalidOpcode);
  const uint64_t selector = cpu.state().seg[insn.group_op()].selector;
  const int size = insn.is_reg_form() ? OpSize(insn) : kSize16;
  if (!cpu.WriteRm(insn, size, selector)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

}  // namespace

void RegisterMov(HandlerTable& t) {
  t[0x88] = t[0x89] = MovRmReg;
  t[0x8a] = t[0x8b] = MovRegRm;
  t[0xc6] = t[0xc7] = MovRmImm;
  for (int op = 0xb0; op <= 0xbf; ++op) t[op] = MovRegImm;
  for (int op = 0xa0; op <= 0xa3; ++op) t[op] = MovMoffs;
  t[0x8d] = Lea;
  t[0xd7] = Xlat;
  t[0x8c] = MovFromSreg;
  t[0x63] = MovExtend;
  for (int op : {0xb6, 0xb7, 0xbe, 0xbf}) t[kMap0F | op] = MovExtend;
  t[0x86] = t[0x87] = XchgRm;
  for (int op = 0x90; op <= 0x97; ++op) t[op] = XchgAcc;
  t[kMap0F | 0xb0] = t[kMap0F | 0xb1] = Cmpxchg;
  t[kMap0F | 0xc0] = t[kMap0F | 0xc1] = Xadd;
  t[kMap0F | 0xc7] = Group9;
  for (int op = 0xc8; op <= 0xcf; ++op) t[kMap0F | op] = Bswap;
  for (int cc = 0; cc < 16; ++cc) {
    t[kMap0F | (0x40 + cc)] = Cmov;
    t[kMap0F | (0x90 + cc)] = Setcc;
  }
}

}  // namespace vireo::emu
