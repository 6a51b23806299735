// Bit instructions: BT/BTS/BTR/BTC (register and immediate offsets), BSF/BSR, TZCNT/LZCNT
// (F3-prefixed BSF/BSR), POPCNT (F3 0F B8). Undefined flags follow this CPU.
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

// 0F A3/AB/B3/BB (register offset) and 0F BA /4-/7 (imm8 offset).
StepStatus BitTest(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  const int bits = 8 << size;
  int op;  // 0 BT, 1 BTS, 2 BTR, 3 BTC
  int64_t offset;
  if ((insn.opcode() & 0xff) == 0xba) {
    if (insn.group_op() < 4) return cpu.Raise(kInvalidOpcode);
    op = insn.group_op() - 4;
    offset = static_cast<int64_t>(insn.imm() & (bits - 1));  // imm offsets never leave the operand
  } else {
    static constexpr int kOps[4] = {0, 1, 2, 3};
    op = kOps[((insn.opcode() & 0xff) - 0xa3) >> 3];
    offset = SignExtend(cpu.Reg(insn.reg(), size, insn.rex()), size);
  }
  uint64_t v;
  if (insn.is_reg_form()) {
    offset &= bits - 1;
    v = cpu.Reg(insn.rm(), size, insn.rex());
  } else {
    // A register offset addresses memory beyond the operand (SDM "BT": bit string).
    const int64_t unit = offset >> (3 + size);  // floor division: negative offsets go back
    offset &= bits - 1;
    const uint64_t ea = cpu.EffectiveAddress(insn) + static_cast<uint64_t>(unit * (bits / 8));
    if (!cpu.Read(insn.segment(), ea, size, &v, insn.address_size())) return cpu.MemoryFault();
    const uint64_t mask = uint64_t{1} << offset;
    const bool cf = v & mask;
    if (op != 0) {
      const uint64_t nv = op == 1 ? (v | mask) : op == 2 ? (v & ~mask) : (v ^ mask);
      if (!cpu.Write(insn.segment(), ea, size, nv, insn.address_size())) return cpu.MemoryFault();
    }
    cpu.state().flags.SetArith(cf ? kCf : 0, kCf);
    return StepStatus::kOk;
  }
  const uint64_t mask = uint64_t{1} << offset;
  const bool cf = v & mask;
  if (op != 0) {
    const uint64_t nv = op == 1 ? (v | mask) : op == 2 ? (v & ~mask) : (v ^ mask);
    cpu.SetReg(insn.rm(), size, insn.rex(), nv);
  }
  // OF/SF/AF/PF are undefined; this CPU leaves them unchanged (differential harness).
  cpu.state().flags.SetArith(cf ? kCf : 0, kCf);
  return StepStatus::kOk;
}

// BSF/BSR (0F BC/BD), or TZCNT/LZCNT with F3.
StepStatus BitScan(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  const int bits = 8 << size;
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  const bool forward = (insn.opcode() & 0xff) == 0xbc;
  Flags& f = cpu.state().flags;
  if (insn.rep()) {  // TZCNT / LZCNT: CF = source was zero, ZF = result is zero
    uint64_t r = v == 0 ? bits : forward ? __builtin_ctzll(v) : __builtin_clzll(v) - (64 - bits);
    cpu.SetReg(insn.reg(), size, insn.rex(), r);
    // OF, SF, AF, PF are undefined (SDM "TZCNT"); this CPU clears SF, AF, PF and leaves OF.
    f.SetArith((v == 0 ? kCf : 0) | (r == 0 ? kZf : 0), kCf | kZf | kSf | kAf | kPf);
    return StepStatus::kOk;
  }
  // BSF/BSR: only ZF is defined (SDM "BSF"). This CPU clears CF, OF, SF, AF and sets PF
  // from the low byte of the index; a zero source gives ZF = PF = 1, the rest clear.
  if (v == 0) {
    // Destination unchanged (AMD documents it; Intel CPUs do the same).
    f.SetArith(kZf | kPf);
    return StepStatus::kOk;
  }
  const uint64_t r = forward ? __builtin_ctzll(v) : 63 - __builtin_clzll(v);
  cpu.SetReg(insn.reg(), size, insn.rex(), r);
  f.SetArith(EvenParity(r) ? kPf : 0);
  return StepStatus::kOk;
}

StepStatus Popcnt(Interpreter& cpu, const DecodedInsn& insn) {  // F3 0F B8
  if (!insn.rep()) return cpu.Raise(kInvalidOpcode);            // JMPE: not on this CPU
  const int size = OpSize(insn);
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  const uint64_t r = static_cast<uint64_t>(__builtin_popcountll(v));
  cpu.SetReg(insn.reg(), size, insn.rex(), r);
  cpu.state().flags.SetArith(v == 0 ? kZf : 0);
  return StepStatus::kOk;
}

}  // namespace

void RegisterBits(HandlerTable& t) {
  for (int op : {0xa3, 0xab, 0xb3, 0xbb, 0xba}) t[kMap0F | op] = BitTest;
  t[kMap0F | 0xbc] = t[kMap0F | 0xbd] = BitScan;
  t[kMap0F | 0xb8] = Popcnt;
}

}  // namespace vireo::emu
