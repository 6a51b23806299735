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

// FF /2 /3 /4 /5 /6 (CALL, JMP, PUSH r/m), called from the FE/FF group handler.
StepStatus GroupFFControl(Interpreter& cpu, const DecodedInsn& insn);

// The effective operand size of `insn` for handlers (byte ops included).
inline int OpSize(const DecodedInsn& insn) { return insn.operand_size(); }

// Sign-extends the low `size_log`-sized part of value.
inline int64_t SignExtend(uint64_t value, int size_log) {
  const int shift = 64 - (8 << size_log);
  return static_cast<int64_t>(value << shift) >> shift;
}

}  // namespace vireo::emu
