// Each insn_*.cc file fills its opcodes into the dispatch table; handlers.cc calls them all
// once. Shared helpers between groups are declared here too.
#pragma once

#include "accel/emu/interpreter.h"

namespace vireo::emu {

void RegisterAlu(HandlerTable& table);
void RegisterShift(HandlerTable& table);
void RegisterMov(HandlerTable& table);
void RegisterControl(HandlerTable& table);
void RegisterBits(HandlerTable& table);
void RegisterString(HandlerTable& table);
void RegisterSystem(HandlerTable& table);
void RegisterPrivileged(HandlerTable& table);  // after RegisterSystem: overrides CLI/STI
void RegisterFpu(HandlerTable& table);         // x87 control, FXSAVE/FXRSTOR, MXCSR, 0F AE
void RegisterSse(HandlerTable& table);         // SSE/SSE2 moves, logic, shuffles
void RegisterSseInteger(HandlerTable& table);  // SSE2 packed-integer arithmetic
void RegisterSseFloat(HandlerTable& table);    // SSE/SSE2 floating point, conversions
// MOV/PUSH/POP Sreg, LxS, far JMP/CALL/RET (insn_segment.cc); MOV DR (insn_control_regs.cc).
void RegisterSegment(HandlerTable& table);
void RegisterControlRegs(HandlerTable& table);

// FF /2 /3 /4 /5 /6 (CALL, JMP, PUSH r/m), called from the FE/FF group handler.
StepStatus GroupFFControl(Interpreter& cpu, const DecodedInsn& insn);
// FF /3 /5: far CALL/JMP through memory (insn_segment.cc).
StepStatus GroupFFFar(Interpreter& cpu, const DecodedInsn& insn);
// 0F 01 forms from insn_control_regs.cc, called from the group 7 handler.
StepStatus Lmsw(Interpreter& cpu, const DecodedInsn& insn);
StepStatus Smsw(Interpreter& cpu, const DecodedInsn& insn);
StepStatus XgetbvXsetbv(Interpreter& cpu, const DecodedInsn& insn);
// 0F 00 /4 /5 VERR/VERW (group 6) and 63 ARPL outside 64-bit mode (insn_segment.cc).
StepStatus VerrVerw(Interpreter& cpu, const DecodedInsn& insn);
StepStatus Arpl(Interpreter& cpu, const DecodedInsn& insn);

// Group 2 operation `op` (/0-/7: ROL ROR RCL RCR SHL SHR SAL SAR) on `v`: returns the result
// and writes the flags, unless the count (after masking) is zero (insn_shift.cc).
uint64_t Shift(Flags& f, int op, int size, uint64_t v, unsigned count);

// Recomputes FSW.ES and FSW.B from the exception flags FCW leaves unmasked, as this CPU does
// whenever x87 state is loaded (FLDCW, FXRSTOR; the harness for state it sets directly).
void UpdateX87Summary(FxState& fx);
// D8-DF apart from the control forms: run on the host's x87 unit (insn_x87.cc).
StepStatus X87Arithmetic(Interpreter& cpu, const DecodedInsn& insn);

// The effective operand size of `insn` for handlers (byte ops included).
inline int OpSize(const DecodedInsn& insn) { return insn.operand_size(); }

// Sign-extends the low `size_log`-sized part of value.
inline int64_t SignExtend(uint64_t value, int size_log) {
  const int shift = 64 - (8 << size_log);
  return static_cast<int64_t>(value << shift) >> shift;
}

}  // namespace vireo::emu
