// Segment-register loads and far transfers outside the fast path: MOV/POP Sreg and LDS..LGS
// (SDM Vol. 2 "MOV", "POP", "LDS"), far JMP/CALL/RET (Vol. 2 "JMP", "CALL", "RET"), and what a
// return to an outer privilege level does to the data segment registers. Real mode loads
// selector << 4 as the base; protected and IA-32e modes read the GDT/LDT descriptor, check
// it (null selector, type, DPL/RPL/CPL, present), set its accessed bit, then commit. Every
// function checks everything first, so a fault leaves the registers as they were.
#pragma once

#include <cstdint>

#include "accel/emu/interpreter.h"

namespace vireo::emu {

// The real-mode cache of a segment register: base selector * 16, 64 KiB limit, present,
// read/write data (or execute/read code), as MOV Sreg and far transfers load it in real mode.
accel::Segment RealModeSegment(uint16_t selector, bool code);

// The cache a GDT/LDT descriptor loads (base, limit scaled by G, type, S, DPL, P, AVL, L, D/B).
// Outside IA-32e mode the L bit is reserved and ignored.
accel::Segment SegmentFrom(const CpuState& state, uint16_t selector, uint64_t descriptor);

// Checks a load of `selector` into data/stack register `seg` and returns the new cache in
// *out (not committed) with the descriptor's accessed bit set in memory. kOk or the fault:
// #GP(0) for a null SS (except at CPL < 3 in 64-bit mode), #GP(selector) for type, DPL or
// RPL violations, #NP(selector) (#SS(selector) for SS) when not present.
StepStatus CheckSegmentLoad(Interpreter& cpu, Seg seg, uint16_t selector, accel::Segment* out);

// CheckSegmentLoad, then commits; loading SS opens the one-instruction interrupt shadow
// (SDM Vol. 3 6.8.3).
StepStatus LoadSegment(Interpreter& cpu, Seg seg, uint16_t selector);

// Far JMP or CALL to selector:offset with the instruction's operand size. Direct code
// segments only (conforming and non-conforming, no privilege change); call gates, task
// gates and TSS selectors are not emulated (kUnimplemented).
StepStatus FarTransfer(Interpreter& cpu, uint16_t selector, uint64_t offset, int size, bool call);

// RETF / RETF imm16: same-level and outer-level returns.
StepStatus FarReturn(Interpreter& cpu, int size, uint16_t release);

// After a return to outer level `new_cpl`: DS/ES/FS/GS holding data or non-conforming code
// with DPL < new CPL become null (SDM Vol. 2 "RET", "IRET").
void DropInaccessibleSegments(CpuState& state, int new_cpl);

}  // namespace vireo::emu
