// System and miscellaneous: CPUID, RDTSC/RDTSCP, HLT, IN/OUT (I/O exits), flag bit
// instructions, NOP forms, fences, UD2, INT3/INT n. Privilege checks follow the SDM: HLT and
// CLI/STI (IOPL) fault at CPL3, IN/OUT need CPL <= IOPL (the TSS I/O bitmap is not consulted
// yet, so CPL3 with IOPL < 3 always faults).
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

int Iopl(const CpuState& s) { return static_cast<int>((s.flags.Get() & kIopl) >> 12); }

StepStatus Cpuid(Interpreter& cpu, const DecodedInsn&) {  // 0F A2
  cpu.SyncCode();  // serializing: code another vCPU wrote is seen from here on
  uint32_t out[4];
  CpuState& s = cpu.state();
  cpu.env().Cpuid(static_cast<uint32_t>(s.gpr[kRax]), static_cast<uint32_t>(s.gpr[kRcx]), out);
  cpu.SetGpr(kRax, kSize32, out[0]);
  cpu.SetGpr(kRbx, kSize32, out[1]);
  cpu.SetGpr(kRcx, kSize32, out[2]);
  cpu.SetGpr(kRdx, kSize32, out[3]);
  return StepStatus::kOk;
}

StepStatus Rdtsc(Interpreter& cpu, const DecodedInsn&) {  // 0F 31
  const uint64_t tsc = cpu.env().ReadTsc() + cpu.state().msr.tsc_offset;
  cpu.SetGpr(kRax, kSize32, tsc & 0xffffffff);
  cpu.SetGpr(kRdx, kSize32, tsc >> 32);
  return StepStatus::kOk;
}

StepStatus Hlt(Interpreter& cpu, const DecodedInsn&) {  // F4
  if (cpu.state().cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  return cpu.Halt();
}

// IN/OUT with an immediate port (E4-E7, zero-extended: the decoder sign-extends Ib) or DX
// (EC-EF).
StepStatus InOut(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if ((s.cr0 & kCr0Pe) && s.cpl() > Iopl(s)) return cpu.Raise(kGeneralProtection, 0);
  const uint8_t low = insn.opcode() & 0xff;
  IoRequest io;
  io.port = low >= 0xec ? static_cast<uint16_t>(s.gpr[kRdx]) : static_cast<uint8_t>(insn.imm());
  io.is_write = (low & 2) != 0;
  const int size = (low & 1) ? (insn.operand_size() == kSize16 ? kSize16 : kSize32) : kSize8;
  io.size = static_cast<uint8_t>(1u << size);
  io.data = cpu.Gpr(kRax, size);
  return cpu.IoExit(io);
}

// CLC STC CLI STI CLD STD (F8-FD) and CMC (F5).
StepStatus FlagBit(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const uint8_t op = insn.opcode() & 0xff;
  switch (op) {
    case 0xf5:
      s.flags.SetArith(s.flags.cf() ? 0 : kCf, kCf);
      break;
    case 0xf8:
      s.flags.SetArith(0, kCf);
      break;
    case 0xf9:
      s.flags.SetArith(kCf, kCf);
      break;
    case 0xfc:
      s.flags.SetBit(kDf, false);
      break;
    case 0xfd:
      s.flags.SetBit(kDf, true);
      break;
    default:  // CLI/STI: CPL <= IOPL (no VME/PVI emulation yet); the STI shadow comes later
      if ((s.cr0 & kCr0Pe) && s.cpl() > Iopl(s)) return cpu.Raise(kGeneralProtection, 0);
      s.flags.SetBit(kIf, op == 0xfb);
      break;
  }
  return StepStatus::kOk;
}

StepStatus Nop(Interpreter&, const DecodedInsn&) { return StepStatus::kOk; }

StepStatus Ud(Interpreter& cpu, const DecodedInsn&) { return cpu.Raise(kInvalidOpcode); }

StepStatus NotYet(Interpreter& cpu, const DecodedInsn&) { return cpu.Unimplemented(); }

}  // namespace

// BOUND r, m (62, outside 64-bit mode): #BR when the signed index lies outside the pair of
// bounds at m (SDM Vol. 2 "BOUND"); the register form is not BOUND (#UD).
StepStatus Bound(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  const int size = OpSize(insn);
  const uint64_t ea = cpu.EffectiveAddress(insn);
  uint64_t lower, upper;
  if (!cpu.Read(insn.segment(), ea, size, &lower, insn.address_size()) ||
      !cpu.Read(insn.segment(), ea + (uint64_t{1} << size), size, &upper, insn.address_size())) {
    return cpu.MemoryFault();
  }
  const int64_t index = SignExtend(cpu.Reg(insn.reg(), size, insn.rex()), size);
  if (index < SignExtend(lower, size) || index > SignExtend(upper, size)) {
    return cpu.Raise(kBoundRange);
  }
  return StepStatus::kOk;
}

void RegisterSystem(HandlerTable& t) {
  t[0x62] = Bound;
  t[kMap0F | 0xa2] = Cpuid;
  t[kMap0F | 0x31] = Rdtsc;
  t[0xf4] = Hlt;
  for (int op : {0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef}) t[op] = InOut;
  for (int op : {0xf5, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd}) t[op] = FlagBit;
  for (int op = 0x18; op <= 0x1f; ++op) t[kMap0F | op] = Nop;  // hint NOPs, prefetches
  t[kMap0F | 0x0d] = Nop;                                      // PREFETCHW
  t[kMap0F | 0x0b] = Ud;
  t[kMap0F | 0xb9] = Ud;  // UD1
  t[kMap0F | 0xff] = Ud;  // UD0
  // FWAIT (9B) and 0F AE (fences, FXSAVE, ...) are in insn_fpu.cc.
  (void)NotYet;
}

}  // namespace vireo::emu
