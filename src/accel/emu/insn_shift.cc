// Shifts and rotates: group 2 (C0 C1 D0-D3) and SHLD/SHRD (SDM Vol. 2 "SAL/SAR/SHL/SHR",
// "RCL/RCR/ROL/ROR", "SHLD", "SHRD"). The count is masked to 5 bits (6 with 64-bit operands);
// a masked count of 0 changes nothing, flags included. Where the SDM leaves a flag undefined
// (OF for counts above 1, AF) the value here is what this CPU produces (differential harness).
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

uint64_t Msb(uint64_t v, int size) { return (v & SignBit(size)) ? 1 : 0; }

// SF/ZF/PF from the result; AF is undefined for shifts and set by this CPU (harness).
uint64_t ResultFlags(uint64_t r, int size) {
  return kAf | ((r & SignBit(size)) ? kSf : 0) | (r == 0 ? kZf : 0) | (EvenParity(r) ? kPf : 0);
}

StepStatus Group2(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  const uint16_t op = insn.opcode();
  unsigned count = op <= 0xc1   ? static_cast<unsigned>(insn.imm())
                   : op <= 0xd1 ? 1u
                                : static_cast<unsigned>(cpu.Gpr(kRcx, kSize8));
  uint64_t v;
  if (!cpu.ReadRm(insn, size, &v)) return cpu.MemoryFault();
  if ((count & (size == kSize64 ? 0x3f : 0x1f)) == 0) {
    // Nothing shifts, but a 32-bit register destination is still written: zero-extended.
    if (insn.is_reg_form()) cpu.WriteRm(insn, size, v);
    return StepStatus::kOk;
  }
  const uint64_t r = Shift(cpu.state().flags, insn.group_op(), size, v, count);
  if (!cpu.WriteRm(insn, size, r)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

// SHLD (0F A4/A5) and SHRD (0F AC/AD): shift r/m, filling from the register.
StepStatus DoubleShift(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = OpSize(insn);
  const uint8_t low = insn.opcode() & 0xff;
  const bool left = low <= 0xa5;
  unsigned count = (low == 0xa4 || low == 0xac) ? static_cast<unsigned>(insn.imm())
                                                : static_cast<unsigned>(cpu.Gpr(kRcx, kSize8));
  count &= size == kSize64 ? 0x3f : 0x1f;
  uint64_t dst;
  if (!cpu.ReadRm(insn, size, &dst)) return cpu.MemoryFault();
  if (count == 0) {
    if (insn.is_reg_form()) cpu.WriteRm(insn, size, dst);  // zero-extends a 32-bit register
    return StepStatus::kOk;
  }
  const unsigned bits = 8u << size;
  const uint64_t src = cpu.Reg(insn.reg(), size, insn.rex());
  // Concatenate dst:src (left) or src:dst (right) in 128 bits. 16-bit counts above 16 are
  // undefined in the SDM; this CPU shifts dst:src:src (left) or src:src:dst (right) there
  // (differential harness; its CF for those counts is not a function of the operands we
  // could find, so the harness leaves 16-bit double shifts out of its random cases).
  unsigned __int128 wide;
  uint64_t r, cf, of;
  if (left) {
    wide = (static_cast<unsigned __int128>(dst) << bits) | src;
    if (size == kSize16) wide = (wide << 16) | src;
    const unsigned top = size == kSize16 ? 48 : bits * 2;
    r = static_cast<uint64_t>(wide >> (top - bits - count)) & SizeMask(size);
    cf = static_cast<uint64_t>(wide >> (top - count)) & 1;
    // OF is defined for count 1 only (sign change); this CPU computes MSB(r) ^ CF for every
    // count, except that a 16-bit shift by exactly 16 gives OF = CF.
    of = (size == kSize16 && count == 16) ? cf : Msb(r, size) ^ cf;
  } else {
    wide = (static_cast<unsigned __int128>(src) << bits) | dst;
    if (size == kSize16) wide |= static_cast<unsigned __int128>(src) << 32;
    r = static_cast<uint64_t>(wide >> count) & SizeMask(size);
    cf = static_cast<uint64_t>(wide >> (count - 1)) & 1;
    // OF: defined for count 1 only; this CPU computes MSB(r) ^ MSB-1(r) for every count
    // (the count-1 value, as for SHR).
    of = Msb(r, size) ^ ((r >> (bits - 2)) & 1);
  }
  if (!cpu.WriteRm(insn, size, r)) return cpu.MemoryFault();
  // AF is undefined; this CPU sets it (as for the single shifts).
  cpu.state().flags.SetArith((cf ? kCf : 0) | (of ? kOf : 0) | ResultFlags(r, size));
  return StepStatus::kOk;
}

}  // namespace

uint64_t Shift(Flags& f, int op, int size, uint64_t v, unsigned count) {
  const unsigned bits = 8u << size;
  const uint64_t mask = SizeMask(size);
  v &= mask;
  count &= size == kSize64 ? 0x3f : 0x1f;
  if (count == 0) return v;
  uint64_t r, cf;
  switch (op) {
    case 0: {  // ROL: only CF and OF
      const unsigned c = count % bits;
      r = c == 0 ? v : ((v << c) | (v >> (bits - c))) & mask;
      cf = r & 1;
      f.SetArith((cf ? kCf : 0) | ((Msb(r, size) ^ cf) ? kOf : 0), kCf | kOf);
      return r;
    }
    case 1: {  // ROR
      const unsigned c = count % bits;
      r = c == 0 ? v : ((v >> c) | (v << (bits - c))) & mask;
      cf = Msb(r, size);
      const uint64_t of = cf ^ ((r >> (bits - 2)) & 1);
      f.SetArith((cf ? kCf : 0) | (of ? kOf : 0), kCf | kOf);
      return r;
    }
    case 2:    // RCL: a (bits+1)-bit rotate through CF
    case 3: {  // RCR
      const unsigned c = size <= kSize16 ? count % (bits + 1) : count;
      unsigned __int128 wide = (static_cast<unsigned __int128>(f.cf()) << bits) | v;
      const unsigned width = bits + 1;
      const unsigned __int128 wmask = (static_cast<unsigned __int128>(1) << width) - 1;
      if (c != 0) {
        wide = op == 2 ? ((wide << c) | (wide >> (width - c))) & wmask
                       : ((wide >> c) | (wide << (width - c))) & wmask;
      }
      r = static_cast<uint64_t>(wide) & mask;
      cf = static_cast<uint64_t>(wide >> bits) & 1;
      const uint64_t of = op == 2 ? (Msb(r, size) ^ cf) : (Msb(r, size) ^ ((r >> (bits - 2)) & 1));
      f.SetArith((cf ? kCf : 0) | (of ? kOf : 0), kCf | kOf);
      return r;
    }
    // SHL, SHR, SAR: flags recorded lazily (flags.h computes CF and OF from the operand and
    // count: for SHR, OF is MSB(r) ^ MSB-1(r) on this CPU for every count, which is the
    // SDM's value for count 1).
    case 4:
    case 6:  // SHL/SAL
      r = count < bits ? (v << count) & mask : 0;
      f.Record(FlagOp::kShl, size, v, count, r);
      return r;
    case 5:  // SHR
      r = count < bits ? v >> count : 0;
      f.Record(FlagOp::kShr, size, v, count, r);
      return r;
    default: {  // SAR
      const int64_t sv = SignExtend(v, size);
      r = static_cast<uint64_t>(count < bits ? sv >> count : sv >> (bits - 1)) & mask;
      f.Record(FlagOp::kSar, size, v, count, r);
      return r;
    }
  }
}

void RegisterShift(HandlerTable& t) {
  t[0xc0] = t[0xc1] = t[0xd0] = t[0xd1] = t[0xd2] = t[0xd3] = Group2;
  for (int op : {0xa4, 0xa5, 0xac, 0xad}) t[kMap0F | op] = DoubleShift;
}

}  // namespace vireo::emu
