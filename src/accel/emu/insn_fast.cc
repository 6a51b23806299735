// Specialized handlers for the forms a kernel runs most (measured on Debian's boot: register
// MOV and ALU, ALU with an immediate, TEST, Jcc, shifts, IMUL, LEA, MOVZX/MOVSXD, PUSH/POP),
// chosen when a block is built. Each does
// exactly what the generic handler does for that form, with the operation, operand size and
// direction fixed at compile time and the register-or-memory choices already made; the
// equivalence is tested in block_cache_test.cc against the generic table.
#include "accel/emu/fast_handlers.h"

#include <array>
#include <utility>

#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

enum AluOp { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp };

// ADD, OR, AND, SUB, XOR, CMP (ADC/SBB stay generic): result and recorded flags as Alu() in
// insn_alu.cc.
template <int Op, int Size>
inline uint64_t AluOp2(Flags& f, uint64_t d, uint64_t s) {
  constexpr uint64_t kMask = SizeMask(Size);
  d &= kMask;
  s &= kMask;
  if constexpr (Op == kAdd) {
    const uint64_t r = (d + s) & kMask;
    f.Record(FlagOp::kAdd, Size, d, s, r);
    return r;
  } else if constexpr (Op == kSub || Op == kCmp) {
    const uint64_t r = (d - s) & kMask;
    f.Record(FlagOp::kSub, Size, d, s, r);
    return r;
  } else {
    const uint64_t r = Op == kOr ? (d | s) : Op == kAnd ? (d & s) : (d ^ s);
    f.Record(FlagOp::kLogic, Size, d, s, r);
    return r;
  }
}

// 32-bit results zero-extend into the 64-bit register; Size is 2 or 3 here.
template <int Size>
inline void Put(uint64_t& reg, uint64_t value) {
  reg = Size == kSize32 ? (value & 0xffffffffull) : value;
}

// 89 / 8B, register form.
template <bool kToRm, int Size>
StepStatus MovRegReg(Interpreter& cpu, const DecodedInsn& insn) {
  auto& gpr = cpu.state().gpr;
  Put<Size>(gpr[kToRm ? insn.rm() : insn.reg()], gpr[kToRm ? insn.reg() : insn.rm()]);
  return StepStatus::kOk;
}

// 8B / 89 with a memory operand.
template <int Size>
StepStatus MovLoad(Interpreter& cpu, const DecodedInsn& insn) {
  uint64_t v;
  if (!cpu.Read(insn.segment(), cpu.EffectiveAddress(insn), Size, &v, insn.address_size()))
    return cpu.MemoryFault();
  Put<Size>(cpu.state().gpr[insn.reg()], v);
  return StepStatus::kOk;
}

template <int Size>
StepStatus MovStore(Interpreter& cpu, const DecodedInsn& insn) {
  if (!cpu.Write(insn.segment(), cpu.EffectiveAddress(insn), Size,
                 cpu.state().gpr[insn.reg()] & SizeMask(Size), insn.address_size()))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

// 01/09/21/29/31/39 (Ev,Gv) and 03/0B/23/2B/33/3B (Gv,Ev), register form.
template <int Op, bool kToRm, int Size>
StepStatus AluRegReg(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  uint64_t& dst = s.gpr[kToRm ? insn.rm() : insn.reg()];
  const uint64_t r = AluOp2<Op, Size>(s.flags, dst, s.gpr[kToRm ? insn.reg() : insn.rm()]);
  if constexpr (Op != kCmp) Put<Size>(dst, r);
  return StepStatus::kOk;
}

// 81 / 83, register form.
template <int Op, int Size>
StepStatus AluRegImm(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  uint64_t& dst = s.gpr[insn.rm()];
  const uint64_t r = AluOp2<Op, Size>(s.flags, dst, insn.imm());
  if constexpr (Op != kCmp) Put<Size>(dst, r);
  return StepStatus::kOk;
}

// 85, register form.
template <int Size>
StepStatus TestRegReg(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  AluOp2<kAnd, Size>(s.flags, s.gpr[insn.rm()], s.gpr[insn.reg()]);
  return StepStatus::kOk;
}

// 70-7F / 0F 80-8F in 64-bit mode (operand size 64: the target is not truncated). It does
// not end its block: taken, it leaves the block; not taken, the block goes on.
template <int Cc>
StepStatus JccNear(Interpreter& cpu, const DecodedInsn& insn) {
  if (cpu.state().flags.Condition(Cc)) cpu.BranchOutOfBlock(cpu.next_rip() + insn.imm());
  return StepStatus::kOk;
}

// 01-3B with a memory operand: op [mem], reg (read-modify-write; CMP only reads) and
// op reg, [mem]. LOCKed forms never come here (RunLocked).
template <int Op, bool kToRm, int Size>
StepStatus AluMem(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const uint64_t ea = cpu.EffectiveAddress(insn);
  uint64_t m;
  if (!cpu.Read(insn.segment(), ea, Size, &m, insn.address_size())) return cpu.MemoryFault();
  uint64_t& reg = s.gpr[insn.reg()];
  if constexpr (kToRm) {
    const uint64_t r = AluOp2<Op, Size>(s.flags, m, reg);
    if (Op != kCmp && !cpu.Write(insn.segment(), ea, Size, r, insn.address_size()))
      return cpu.MemoryFault();
  } else {
    const uint64_t r = AluOp2<Op, Size>(s.flags, reg, m);
    if constexpr (Op != kCmp) Put<Size>(reg, r);
  }
  return StepStatus::kOk;
}

// 81 / 83 with a memory operand.
template <int Op, int Size>
StepStatus AluMemImm(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const uint64_t ea = cpu.EffectiveAddress(insn);
  uint64_t m;
  if (!cpu.Read(insn.segment(), ea, Size, &m, insn.address_size())) return cpu.MemoryFault();
  const uint64_t r = AluOp2<Op, Size>(s.flags, m, insn.imm());
  if (Op != kCmp && !cpu.Write(insn.segment(), ea, Size, r, insn.address_size()))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

// 0F 40-4F, register form: a 32-bit destination is zero-extended even when nothing moves.
template <int Cc, int Size>
StepStatus CmovRegReg(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  uint64_t& dst = s.gpr[insn.reg()];
  Put<Size>(dst, s.flags.Condition(Cc) ? s.gpr[insn.rm()] : dst);
  return StepStatus::kOk;
}

// 0F 90-9F, register form (AH..BH without REX, as the generic handler).
template <int Cc>
StepStatus SetccReg(Interpreter& cpu, const DecodedInsn& insn) {
  cpu.SetReg(insn.rm(), kSize8, insn.rex(), cpu.state().flags.Condition(Cc) ? 1 : 0);
  return StepStatus::kOk;
}

// C1 / D1 / D3, register form: group 2 by an immediate, by 1 or by CL.
template <int Size, int kCountFrom>  // 0: imm8, 1: one, 2: CL
StepStatus ShiftReg(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  uint64_t& reg = s.gpr[insn.rm()];
  const unsigned count = kCountFrom == 0   ? static_cast<unsigned>(insn.imm())
                         : kCountFrom == 1 ? 1u
                                           : static_cast<unsigned>(s.gpr[kRcx] & 0xff);
  // A masked count of 0 changes nothing but still zero-extends a 32-bit register.
  Put<Size>(reg, Shift(s.flags, insn.group_op(), Size, reg & SizeMask(Size), count));
  return StepStatus::kOk;
}

// SHL/SAL (4, 6), SHR (5), SAR (7) of a register: as Shift() computes them for 32- and
// 64-bit operands, whose masked count is always below the width.
template <int Op, int Size, int kCountFrom>
StepStatus ShiftRegOp(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  uint64_t& reg = s.gpr[insn.rm()];
  const unsigned raw = kCountFrom == 0   ? static_cast<unsigned>(insn.imm())
                       : kCountFrom == 1 ? 1u
                                         : static_cast<unsigned>(s.gpr[kRcx]);
  const unsigned count = raw & (Size == kSize64 ? 0x3f : 0x1f);
  const uint64_t v = reg & SizeMask(Size);
  if (count == 0) {
    Put<Size>(reg, v);
    return StepStatus::kOk;
  }
  uint64_t r;
  if constexpr (Op == 5) {
    r = v >> count;
    s.flags.Record(FlagOp::kShr, Size, v, count, r);
  } else if constexpr (Op == 7) {
    r = static_cast<uint64_t>(SignExtend(v, Size) >> count) & SizeMask(Size);
    s.flags.Record(FlagOp::kSar, Size, v, count, r);
  } else {
    r = (v << count) & SizeMask(Size);
    s.flags.Record(FlagOp::kShl, Size, v, count, r);
  }
  Put<Size>(reg, r);
  return StepStatus::kOk;
}

template <int Size, int kCountFrom>
Handler PickShift(int op) {
  switch (op) {
    case 4:
    case 6:
      return &ShiftRegOp<4, Size, kCountFrom>;
    case 5:
      return &ShiftRegOp<5, Size, kCountFrom>;
    case 7:
      return &ShiftRegOp<7, Size, kCountFrom>;
    default:
      return &ShiftReg<Size, kCountFrom>;  // rotates
  }
}

// 0F AF, register form. SF/ZF/AF/PF are left as they were (as the generic handler).
template <int Size>
StepStatus ImulRegReg(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const __int128 p = static_cast<__int128>(SignExtend(s.gpr[insn.rm()], Size)) *
                     SignExtend(s.gpr[insn.reg()], Size);
  const uint64_t lo = static_cast<uint64_t>(p) & SizeMask(Size);
  const bool overflow = p != static_cast<__int128>(SignExtend(lo, Size));
  Put<Size>(s.gpr[insn.reg()], lo);
  s.flags.SetArith(overflow ? kCf | kOf : 0, kCf | kOf);
  return StepStatus::kOk;
}

// 8D with a 32- or 64-bit destination.
template <int Size>
StepStatus LeaReg(Interpreter& cpu, const DecodedInsn& insn) {
  Put<Size>(cpu.state().gpr[insn.reg()], cpu.EffectiveAddress(insn));
  return StepStatus::kOk;
}

// 63 (MOVSXD r64, r32), register form.
StepStatus MovsxdRegReg(Interpreter& cpu, const DecodedInsn& insn) {
  auto& gpr = cpu.state().gpr;
  gpr[insn.reg()] = static_cast<uint64_t>(SignExtend(gpr[insn.rm()], kSize32));
  return StepStatus::kOk;
}

// 0F B6 (MOVZX r32/r64, r/m8).
template <int Size>
StepStatus MovzxByte(Interpreter& cpu, const DecodedInsn& insn) {
  uint64_t v;
  if (!cpu.ReadRm(insn, kSize8, &v)) return cpu.MemoryFault();
  Put<Size>(cpu.state().gpr[insn.reg()], v);
  return StepStatus::kOk;
}

// 50-57 / 58-5F with the 64-bit operand size (the default in 64-bit mode).
StepStatus Push64(Interpreter& cpu, const DecodedInsn& insn) {
  auto& gpr = cpu.state().gpr;
  const uint64_t rsp = gpr[kRsp] - 8;
  if (!cpu.Write(kSs, rsp, kSize64, gpr[(insn.opcode() & 7) | ((insn.rex_bits() & 1) << 3)]))
    return cpu.MemoryFault();
  gpr[kRsp] = rsp;
  return StepStatus::kOk;
}

StepStatus Pop64(Interpreter& cpu, const DecodedInsn& insn) {
  auto& gpr = cpu.state().gpr;
  uint64_t v;
  if (!cpu.Read(kSs, gpr[kRsp], kSize64, &v)) return cpu.MemoryFault();
  gpr[kRsp] += 8;
  gpr[(insn.opcode() & 7) | ((insn.rex_bits() & 1) << 3)] = v;  // POP RSP: the loaded value
  return StepStatus::kOk;
}

// Tables of the templates by run-time index.
template <bool kToRm, int Size, size_t... kOps>
constexpr std::array<Handler, 8> AluRegRegTable(std::index_sequence<kOps...>) {
  return {&AluRegReg<static_cast<int>(kOps), kToRm, Size>...};
}
template <int Size, size_t... kOps>
constexpr std::array<Handler, 8> AluRegImmTable(std::index_sequence<kOps...>) {
  return {&AluRegImm<static_cast<int>(kOps), Size>...};
}
template <size_t... kCcs>
constexpr std::array<Handler, 16> JccTable(std::index_sequence<kCcs...>) {
  return {&JccNear<static_cast<int>(kCcs)>...};
}

template <bool kToRm, int Size, size_t... kOps>
constexpr std::array<Handler, 8> AluMemTable(std::index_sequence<kOps...>) {
  return {&AluMem<static_cast<int>(kOps), kToRm, Size>...};
}
template <int Size, size_t... kOps>
constexpr std::array<Handler, 8> AluMemImmTable(std::index_sequence<kOps...>) {
  return {&AluMemImm<static_cast<int>(kOps), Size>...};
}
template <int Size, size_t... kCcs>
constexpr std::array<Handler, 16> CmovTable(std::index_sequence<kCcs...>) {
  return {&CmovRegReg<static_cast<int>(kCcs), Size>...};
}
template <size_t... kCcs>
constexpr std::array<Handler, 16> SetccTable(std::index_sequence<kCcs...>) {
  return {&SetccReg<static_cast<int>(kCcs)>...};
}

constexpr auto kAluRegRegToRm32 = AluRegRegTable<true, kSize32>(std::make_index_sequence<8>());
constexpr auto kAluRegRegToRm64 = AluRegRegTable<true, kSize64>(std::make_index_sequence<8>());
constexpr auto kAluRegRegToReg32 = AluRegRegTable<false, kSize32>(std::make_index_sequence<8>());
constexpr auto kAluRegRegToReg64 = AluRegRegTable<false, kSize64>(std::make_index_sequence<8>());
constexpr auto kAluRegImm32 = AluRegImmTable<kSize32>(std::make_index_sequence<8>());
constexpr auto kAluRegImm64 = AluRegImmTable<kSize64>(std::make_index_sequence<8>());
constexpr auto kJcc = JccTable(std::make_index_sequence<16>());
constexpr auto kAluMemToRm32 = AluMemTable<true, kSize32>(std::make_index_sequence<8>());
constexpr auto kAluMemToRm64 = AluMemTable<true, kSize64>(std::make_index_sequence<8>());
constexpr auto kAluMemToReg32 = AluMemTable<false, kSize32>(std::make_index_sequence<8>());
constexpr auto kAluMemToReg64 = AluMemTable<false, kSize64>(std::make_index_sequence<8>());
constexpr auto kAluMemImm32 = AluMemImmTable<kSize32>(std::make_index_sequence<8>());
constexpr auto kAluMemImm64 = AluMemImmTable<kSize64>(std::make_index_sequence<8>());
constexpr auto kCmov32 = CmovTable<kSize32>(std::make_index_sequence<16>());
constexpr auto kCmov64 = CmovTable<kSize64>(std::make_index_sequence<16>());
constexpr auto kSetcc = SetccTable(std::make_index_sequence<16>());

bool CarryOp(int op) { return op == kAdc || op == kSbb; }

}  // namespace

bool IsConditionalNear(const DecodedInsn& insn) {
  const uint16_t op = insn.opcode();
  return (op >= 0x70 && op <= 0x7f) || (op >= (kMap0F | 0x80) && op <= (kMap0F | 0x8f));
}

bool ContinuesBlock(const DecodedInsn& insn, CpuMode mode) {
  return mode == CpuMode::kLong64 && IsConditionalNear(insn) && !insn.lock() &&
         insn.operand_size() == kSize64;
}

Handler FastHandler(const DecodedInsn& insn, CpuMode mode) {
  if (Interpreter::IsLocked(insn)) return &Interpreter::RunLocked;
  const uint16_t op = insn.opcode();
  // SETcc writes a byte whatever the operand size.
  if (mode == CpuMode::kLong64 && op >= (kMap0F | 0x90) && op <= (kMap0F | 0x9f))
    return insn.is_reg_form() ? kSetcc[op & 0xf] : nullptr;
  const int size = insn.operand_size();
  if (mode != CpuMode::kLong64 || insn.lock() || (size != kSize32 && size != kSize64))
    return nullptr;
  const bool wide = size == kSize64;
  if (IsConditionalNear(insn)) return wide ? kJcc[op & 0xf] : nullptr;
  if (op >= 0x50 && op <= 0x5f) {
    if (!wide) return nullptr;
    return op < 0x58 ? &Push64 : &Pop64;
  }
  if (op == (kMap0F | 0xb6)) return wide ? &MovzxByte<kSize64> : &MovzxByte<kSize32>;
  if (insn.has_memory_operand()) {
    if (op == 0x8b) return wide ? &MovLoad<kSize64> : &MovLoad<kSize32>;
    if (op == 0x89) return wide ? &MovStore<kSize64> : &MovStore<kSize32>;
    if (op == 0x8d) return wide ? &LeaReg<kSize64> : &LeaReg<kSize32>;
    if (op == 0x81 || op == 0x83) {
      if (CarryOp(insn.group_op())) return nullptr;
      return (wide ? kAluMemImm64 : kAluMemImm32)[insn.group_op()];
    }
    if (op < 0x40 && ((op & 7) == 1 || (op & 7) == 3) && !CarryOp(op >> 3)) {
      if ((op & 7) == 1) return (wide ? kAluMemToRm64 : kAluMemToRm32)[op >> 3];
      return (wide ? kAluMemToReg64 : kAluMemToReg32)[op >> 3];
    }
    return nullptr;
  }
  if (!insn.is_reg_form()) return nullptr;
  if (op >= (kMap0F | 0x40) && op <= (kMap0F | 0x4f)) return (wide ? kCmov64 : kCmov32)[op & 0xf];
  switch (op) {
    case 0x89:
      return wide ? &MovRegReg<true, kSize64> : &MovRegReg<true, kSize32>;
    case 0x8b:
      return wide ? &MovRegReg<false, kSize64> : &MovRegReg<false, kSize32>;
    case 0x85:
      return wide ? &TestRegReg<kSize64> : &TestRegReg<kSize32>;
    case 0x81:
    case 0x83:
      if (CarryOp(insn.group_op())) return nullptr;
      return (wide ? kAluRegImm64 : kAluRegImm32)[insn.group_op()];
    case 0xc1:
      return wide ? PickShift<kSize64, 0>(insn.group_op()) : PickShift<kSize32, 0>(insn.group_op());
    case 0xd1:
      return wide ? PickShift<kSize64, 1>(insn.group_op()) : PickShift<kSize32, 1>(insn.group_op());
    case 0xd3:
      return wide ? PickShift<kSize64, 2>(insn.group_op()) : PickShift<kSize32, 2>(insn.group_op());
    case kMap0F | 0xaf:
      return wide ? &ImulRegReg<kSize64> : &ImulRegReg<kSize32>;
    case 0x63:
      return wide ? &MovsxdRegReg : nullptr;
    default:
      break;
  }
  if (op < 0x40 && ((op & 7) == 1 || (op & 7) == 3) && !CarryOp(op >> 3)) {
    const bool to_rm = (op & 7) == 1;
    if (to_rm) return (wide ? kAluRegRegToRm64 : kAluRegRegToRm32)[op >> 3];
    return (wide ? kAluRegRegToReg64 : kAluRegRegToReg32)[op >> 3];
  }
  return nullptr;
}

}  // namespace vireo::emu
