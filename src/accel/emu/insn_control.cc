// Stack and near control flow: PUSH/POP, CALL/RET/JMP, Jcc, LOOP/JCXZ, ENTER/LEAVE,
// PUSHF/POPF, LAHF/SAHF. Far transfers and task switches are not here yet.
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

int RegFromOpcode(const DecodedInsn& insn) {
  return (insn.opcode() & 7) | ((insn.rex_bits() & 1) << 3);
}

StepStatus PushReg(Interpreter& cpu, const DecodedInsn& insn) {  // 50-57
  const int size = OpSize(insn);
  if (!cpu.Push(size, cpu.Gpr(RegFromOpcode(insn), size))) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus PopReg(Interpreter& cpu, const DecodedInsn& insn) {  // 58-5F
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.Pop(size, &v)) return cpu.MemoryFault();
  cpu.SetGpr(RegFromOpcode(insn), size, v);
  return StepStatus::kOk;
}

StepStatus PushImm(Interpreter& cpu, const DecodedInsn& insn) {  // 68/6A
  if (!cpu.Push(OpSize(insn), insn.imm())) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus PopRm(Interpreter& cpu, const DecodedInsn& insn) {  // 8F /0
  const int size = OpSize(insn);
  // POP to memory computes the address with RSP already incremented (SDM "POP").
  const uint64_t saved_rsp = cpu.state().gpr[kRsp];
  uint64_t v;
  if (!cpu.Pop(size, &v)) return cpu.MemoryFault();
  if (!cpu.WriteRm(insn, size, v)) {
    cpu.state().gpr[kRsp] = saved_rsp;
    return cpu.MemoryFault();
  }
  return StepStatus::kOk;
}

// The target of a relative branch: next RIP + displacement, at operand size.
uint64_t RelTarget(Interpreter& cpu, const DecodedInsn& insn) {
  return cpu.next_rip() + insn.imm();
}

StepStatus Jcc(Interpreter& cpu, const DecodedInsn& insn) {  // 70-7F, 0F 80-8F
  if (cpu.state().flags.Condition(insn.opcode() & 0xf))
    cpu.Branch(RelTarget(cpu, insn), OpSize(insn));
  return StepStatus::kOk;
}

StepStatus JmpRel(Interpreter& cpu, const DecodedInsn& insn) {  // E9/EB
  cpu.Branch(RelTarget(cpu, insn), OpSize(insn));
  return StepStatus::kOk;
}

StepStatus CallRel(Interpreter& cpu, const DecodedInsn& insn) {  // E8
  const int size = OpSize(insn);
  if (!cpu.Push(size, cpu.next_rip())) return cpu.MemoryFault();
  cpu.Branch(RelTarget(cpu, insn), size);
  return StepStatus::kOk;
}

StepStatus Ret(Interpreter& cpu, const DecodedInsn& insn) {  // C2/C3
  const int size = OpSize(insn);
  uint64_t target;
  if (!cpu.Pop(size, &target)) return cpu.MemoryFault();
  if (insn.opcode() == 0xc2) {
    const int ss = cpu.StackSizeLog();
    cpu.SetGpr(kRsp, ss, cpu.Gpr(kRsp, ss) + (insn.imm() & 0xffff));
  }
  cpu.Branch(target, size);
  return StepStatus::kOk;
}

// LOOP/LOOPE/LOOPNE/JrCXZ (E0-E3): the counter is rCX at address size.
StepStatus Loop(Interpreter& cpu, const DecodedInsn& insn) {
  const int asize = insn.address_size();
  uint64_t count = cpu.Gpr(kRcx, asize);
  bool take;
  if (insn.opcode() == 0xe3) {
    take = count == 0;
  } else {
    count = (count - 1) & SizeMask(asize);
    cpu.SetGpr(kRcx, asize, count);
    take = count != 0;
    if (insn.opcode() == 0xe0) take = take && !cpu.state().flags.zf();
    if (insn.opcode() == 0xe1) take = take && cpu.state().flags.zf();
  }
  if (take) cpu.Branch(RelTarget(cpu, insn), OpSize(insn));
  return StepStatus::kOk;
}

StepStatus Enter(Interpreter& cpu, const DecodedInsn& insn) {  // C8 iw ib
  const int size = OpSize(insn);
  const int ss = cpu.StackSizeLog();
  const unsigned level = insn.imm2() & 31;
  const uint64_t saved_rsp = cpu.state().gpr[kRsp];
  if (!cpu.Push(size, cpu.Gpr(kRbp, size))) return cpu.MemoryFault();
  const uint64_t frame = cpu.Gpr(kRsp, ss);
  uint64_t rbp = cpu.Gpr(kRbp, ss);
  const uint64_t step = uint64_t{1} << size;
  for (unsigned i = 1; i < level; ++i) {
    rbp = (rbp - step) & SizeMask(ss);
    uint64_t v;
    if (!cpu.Read(kSs, rbp, size, &v, ss) || !cpu.Push(size, v)) {
      cpu.state().gpr[kRsp] = saved_rsp;
      return cpu.MemoryFault();
    }
  }
  if (level > 0 && !cpu.Push(size, frame)) {
    cpu.state().gpr[kRsp] = saved_rsp;
    return cpu.MemoryFault();
  }
  const uint64_t new_rsp = (cpu.Gpr(kRsp, ss) - (insn.imm() & 0xffff)) & SizeMask(ss);
  // The final stack pointer must be writable (SDM "ENTER": #SS/#PF if not).
  uint64_t probe;
  if (!cpu.Read(kSs, new_rsp, kSize8, &probe, ss)) {
    cpu.state().gpr[kRsp] = saved_rsp;
    return cpu.MemoryFault();
  }
  cpu.SetGpr(kRbp, size, frame);
  cpu.SetGpr(kRsp, ss, new_rsp);
  return StepStatus::kOk;
}

StepStatus Leave(Interpreter& cpu, const DecodedInsn& insn) {  // C9
  const int size = OpSize(insn);
  const int ss = cpu.StackSizeLog();
  uint64_t v;
  if (!cpu.Read(kSs, cpu.Gpr(kRbp, ss), size, &v, ss)) return cpu.MemoryFault();
  cpu.SetGpr(kRsp, ss, cpu.Gpr(kRbp, ss) + (uint64_t{1} << size));
  cpu.SetGpr(kRbp, size, v);
  return StepStatus::kOk;
}

StepStatus Pushf(Interpreter& cpu, const DecodedInsn& insn) {  // 9C
  // VM and RF are pushed as 0 (SDM "PUSHF").
  const uint64_t f = cpu.state().flags.Get() & ~(kVm | kRf);
  if (!cpu.Push(OpSize(insn), f)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

StepStatus Popf(Interpreter& cpu, const DecodedInsn& insn) {  // 9D
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.Pop(size, &v)) return cpu.MemoryFault();
  CpuState& s = cpu.state();
  const uint64_t old = s.flags.Get();
  // What POPF may change depends on CPL and IOPL (SDM "POPF" table): VM, VIP, VIF never
  // here; IOPL only at CPL0; IF only when CPL <= IOPL.
  uint64_t changeable = kArithFlags | kTf | kDf | kNt | kAc | kId;
  const int iopl = static_cast<int>((old & kIopl) >> 12);
  if (s.cpl() == 0) changeable |= kIopl;
  if (s.cpl() <= iopl) changeable |= kIf;
  if (size == kSize16) changeable &= 0xffff;
  s.flags.Set((old & ~changeable) | (v & changeable));
  return StepStatus::kOk;
}

StepStatus Lahf(Interpreter& cpu, const DecodedInsn&) {  // 9F
  cpu.SetReg(4, kSize8, false, cpu.state().flags.Get() & 0xff);
  return StepStatus::kOk;
}

StepStatus Sahf(Interpreter& cpu, const DecodedInsn&) {  // 9E
  const uint64_t ah = cpu.Reg(4, kSize8, false);
  cpu.state().flags.SetArith(ah, kCf | kPf | kAf | kZf | kSf);
  return StepStatus::kOk;
}

}  // namespace

StepStatus GroupFFControl(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  switch (insn.group_op()) {
    case 2: {  // CALL r/m
      uint64_t target;
      if (!cpu.ReadRm(insn, size, &target)) return cpu.MemoryFault();
      if (!cpu.Push(size, cpu.next_rip())) return cpu.MemoryFault();
      cpu.Branch(target, size);
      return StepStatus::kOk;
    }
    case 4: {  // JMP r/m
      uint64_t target;
      if (!cpu.ReadRm(insn, size, &target)) return cpu.MemoryFault();
      cpu.Branch(target, size);
      return StepStatus::kOk;
    }
    case 6: {  // PUSH r/m
      uint64_t v;
      if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
      if (!cpu.Push(size, v)) return cpu.MemoryFault();
      return StepStatus::kOk;
    }
    default:  // far CALL/JMP
      return GroupFFFar(cpu, insn);
  }
}

void RegisterControl(HandlerTable& t) {
  for (int op = 0x50; op <= 0x57; ++op) t[op] = PushReg;
  for (int op = 0x58; op <= 0x5f; ++op) t[op] = PopReg;
  t[0x68] = t[0x6a] = PushImm;
  t[0x8f] = PopRm;
  for (int cc = 0; cc < 16; ++cc) t[0x70 + cc] = t[kMap0F | (0x80 + cc)] = Jcc;
  t[0xe9] = t[0xeb] = JmpRel;
  t[0xe8] = CallRel;
  t[0xc2] = t[0xc3] = Ret;
  for (int op = 0xe0; op <= 0xe3; ++op) t[op] = Loop;
  t[0xc8] = Enter;
  t[0xc9] = Leave;
  t[0x9c] = Pushf;
  t[0x9d] = Popf;
  t[0x9e] = Sahf;
  t[0x9f] = Lahf;
}

}  // namespace vireo::emu
