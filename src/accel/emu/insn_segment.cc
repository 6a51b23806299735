// Segment registers and far transfers: MOV Sreg, PUSH/POP Sreg, LES/LDS/LSS/LFS/LGS, far
// JMP/CALL (ptr16:16/32 and m16:16/32/64), RETF; and the selector tests LAR, LSL, VERR,
// VERW, ARPL (SDM Vol. 2). The descriptor checks live in
// segmentation.cc; these handlers fetch the operands and keep RSP/registers untouched
// until the load has passed.
#include "accel/emu/insn_groups.h"
#include "accel/emu/segmentation.h"

namespace vireo::emu {
namespace {

StepStatus MovToSreg(Interpreter& cpu, const DecodedInsn& insn) {  // 8E
  const int sreg = insn.group_op();
  if (sreg == kCs || sreg > kGs) return cpu.Raise(kInvalidOpcode);
  uint64_t v;
  if (!cpu.ReadRm(insn, kSize16, &v)) return cpu.MemoryFault();
  return LoadSegment(cpu, static_cast<Seg>(sreg), static_cast<uint16_t>(v));
}

Seg SregOf(uint16_t opcode) {
  switch (opcode) {
    case 0x06:
    case 0x07:
      return kEs;
    case 0x0e:
      return kCs;
    case 0x16:
    case 0x17:
      return kSs;
    case 0x1e:
    case 0x1f:
      return kDs;
    case kMap0F | 0xa0:
    case kMap0F | 0xa1:
      return kFs;
    default:
      return kGs;
  }
}

// PUSH Sreg: the selector zero-extended to the operand size (AMD APM Vol. 3 "PUSH").
StepStatus PushSreg(Interpreter& cpu, const DecodedInsn& insn) {
  if (!cpu.Push(OpSize(insn), cpu.state().seg[SregOf(insn.opcode())].selector))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

// POP Sreg: the load is checked before rSP moves, so a fault leaves the stack as it was.
StepStatus PopSreg(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const int size = OpSize(insn);
  const int ss_size = cpu.StackSizeLog();
  const uint64_t rsp = s.gpr[kRsp];
  uint64_t v;
  if (!cpu.Read(kSs, rsp, size, &v, ss_size)) return cpu.MemoryFault();
  const StepStatus st = LoadSegment(cpu, SregOf(insn.opcode()), static_cast<uint16_t>(v));
  if (st != StepStatus::kOk) return st;
  cpu.SetGpr(kRsp, ss_size, rsp + (uint64_t{1} << size));
  return StepStatus::kOk;
}

// LES/LDS (C4/C5, not in 64-bit mode) and LSS/LFS/LGS (0F B2/B4/B5): offset then selector.
StepStatus LoadFarPointer(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  Seg seg;
  switch (insn.opcode()) {
    case 0xc4:
      seg = kEs;
      break;
    case 0xc5:
      seg = kDs;
      break;
    case kMap0F | 0xb2:
      seg = kSs;
      break;
    case kMap0F | 0xb4:
      seg = kFs;
      break;
    default:
      seg = kGs;
      break;
  }
  const int size = OpSize(insn);
  const uint64_t ea = cpu.EffectiveAddress(insn);
  uint64_t offset, selector;
  if (!cpu.Read(insn.segment(), ea, size, &offset, insn.address_size()) ||
      !cpu.Read(insn.segment(), ea + (uint64_t{1} << size), kSize16, &selector,
                insn.address_size()))
    return cpu.MemoryFault();
  const StepStatus st = LoadSegment(cpu, seg, static_cast<uint16_t>(selector));
  if (st != StepStatus::kOk) return st;
  cpu.SetReg(insn.reg(), size, true, offset);
  return StepStatus::kOk;
}

StepStatus FarDirect(Interpreter& cpu, const DecodedInsn& insn) {  // EA / 9A ptr16:16/32
  return FarTransfer(cpu, insn.imm2(), insn.imm(), OpSize(insn), insn.opcode() == 0x9a);
}

StepStatus RetFar(Interpreter& cpu, const DecodedInsn& insn) {  // CA iw / CB
  return FarReturn(cpu, OpSize(insn),
                   insn.opcode() == 0xca ? static_cast<uint16_t>(insn.imm()) : uint16_t{0});
}

// The descriptor of `selector` for LAR/LSL/VERR/VERW, which report an unusable selector in
// ZF instead of faulting: false for a null selector or one past the GDT/LDT limit.
bool PeekDescriptor(Interpreter& cpu, uint16_t selector, uint64_t* d, bool* faulted) {
  const CpuState& s = cpu.state();
  *faulted = false;
  if ((selector & 0xfffc) == 0) return false;
  const bool ldt = selector & 4;
  if (ldt && s.ldtr.unusable) return false;
  const uint64_t base = ldt ? s.ldtr.base : s.gdtr.base;
  const uint32_t limit = ldt ? s.ldtr.limit : s.gdtr.limit;
  if ((selector | 7u) > limit) return false;
  if (!cpu.SystemRead(base + (selector & ~7u), d, 8)) {
    *faulted = true;  // a #PF (or MMIO) reading the table is a real fault
    return false;
  }
  return true;
}

// Whether CPL and RPL may see the descriptor: DPL >= max(CPL, RPL), except conforming code.
bool Visible(const CpuState& s, uint16_t selector, uint64_t d) {
  const unsigned type = (d >> 40) & 0xf;
  const bool conforming_code = ((d >> 44) & 1) && (type & 0xc) == 0xc;
  const int dpl = (d >> 45) & 3;
  return conforming_code || (dpl >= s.cpl() && dpl >= (selector & 3));
}

void SetZf(CpuState& s, bool zf) { s.flags.SetArith(zf ? kZf : 0, kZf); }

// 0F 02 LAR / 0F 03 LSL (SDM Vol. 2): access rights or the scaled limit, ZF=1; ZF=0 and the
// destination unchanged for a selector that is null, out of range, invisible at CPL/RPL
// or of a system type the instruction does not accept.
StepStatus LarLsl(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (!(s.cr0 & kCr0Pe)) return cpu.Raise(kInvalidOpcode);
  uint64_t raw;
  if (!cpu.ReadRm(insn, kSize16, &raw)) return cpu.MemoryFault();
  const uint16_t selector = static_cast<uint16_t>(raw);
  const bool lsl = (insn.opcode() & 0xff) == 0x03;
  uint64_t d;
  bool faulted;
  bool ok = PeekDescriptor(cpu, selector, &d, &faulted);
  if (faulted) return cpu.MemoryFault();
  if (ok && !((d >> 44) & 1)) {
    // System descriptors: LDT and TSS for both; call and task gates for LAR only; 16-bit
    // ones only outside IA-32e mode.
    const unsigned type = (d >> 40) & 0xf;
    const bool ia32e = s.long_mode();
    ok = type == 2 || type == 9 || type == 0xb ||
         (!ia32e && (type == 1 || type == 3 || (!lsl && (type == 4 || type == 5)))) ||
         (!lsl && type == 0xc);
  }
  ok = ok && Visible(s, selector, d);
  SetZf(s, ok);
  if (!ok) return StepStatus::kOk;
  uint64_t value;
  if (lsl) {
    const accel::Segment seg = Interpreter::CodeSegmentFrom(selector, d);
    value = seg.limit;
  } else {
    value = (d >> 32) & 0x00f0ff00;
  }
  cpu.SetReg(insn.reg(), OpSize(insn), true, value);
  return StepStatus::kOk;
}

}  // namespace

// 63 /r in legacy modes: ARPL r/m16, r16 raises the destination's RPL to the source's.
StepStatus Arpl(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (!(s.cr0 & kCr0Pe)) return cpu.Raise(kInvalidOpcode);
  uint64_t dst;
  if (!cpu.ReadRm(insn, kSize16, &dst)) return cpu.MemoryFault();
  const uint64_t src = cpu.Reg(insn.reg(), kSize16, false);
  const bool raise = (dst & 3) < (src & 3);
  if (raise && !cpu.WriteRm(insn, kSize16, (dst & ~3ull) | (src & 3))) return cpu.MemoryFault();
  SetZf(s, raise);
  return StepStatus::kOk;
}

// 0F 00 /4 VERR, /5 VERW: ZF=1 when the segment is readable (VERR: data or readable code)
// or writable (VERW: writable data) at the current CPL and the selector's RPL.
StepStatus VerrVerw(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  uint64_t raw;
  if (!cpu.ReadRm(insn, kSize16, &raw)) return cpu.MemoryFault();
  const uint16_t selector = static_cast<uint16_t>(raw);
  uint64_t d;
  bool faulted;
  bool ok = PeekDescriptor(cpu, selector, &d, &faulted);
  if (faulted) return cpu.MemoryFault();
  if (ok) {
    const unsigned type = (d >> 40) & 0xf;
    const bool code = type & 8;
    ok = ((d >> 44) & 1) && Visible(s, selector, d) &&
         (insn.group_op() == 4 ? (!code || (type & 2)) : (!code && (type & 2)));
  }
  SetZf(s, ok);
  return StepStatus::kOk;
}

// FF /3 CALL m16:16/32/64 and FF /5 JMP m16:16/32/64.
StepStatus GroupFFFar(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  const int size = OpSize(insn);
  const uint64_t ea = cpu.EffectiveAddress(insn);
  uint64_t offset, selector;
  if (!cpu.Read(insn.segment(), ea, size, &offset, insn.address_size()) ||
      !cpu.Read(insn.segment(), ea + (uint64_t{1} << size), kSize16, &selector,
                insn.address_size()))
    return cpu.MemoryFault();
  return FarTransfer(cpu, static_cast<uint16_t>(selector), offset, size, insn.group_op() == 3);
}

void RegisterSegment(HandlerTable& t) {
  t[0x8e] = MovToSreg;
  for (int op : {0x06, 0x0e, 0x16, 0x1e, kMap0F | 0xa0, kMap0F | 0xa8}) t[op] = PushSreg;
  for (int op : {0x07, 0x17, 0x1f, kMap0F | 0xa1, kMap0F | 0xa9}) t[op] = PopSreg;
  for (int op : {0xc4, 0xc5, kMap0F | 0xb2, kMap0F | 0xb4, kMap0F | 0xb5}) t[op] = LoadFarPointer;
  t[0xea] = t[0x9a] = FarDirect;
  t[0xca] = t[0xcb] = RetFar;
  t[kMap0F | 0x02] = t[kMap0F | 0x03] = LarLsl;
}

}  // namespace vireo::emu
