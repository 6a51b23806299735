// Specialized handlers for the hottest instruction forms (insn_fast.cc), which the block
// cache puts in place of the generic table's entry when a block is built.
#pragma once

#include "accel/emu/block_cache.h"
#include "accel/emu/decoded_insn.h"

namespace vireo::emu {

// A handler equivalent to the generic one for `insn` in `mode`, specialized for its form;
// null when there is none (the generic handler is used).
Handler FastHandler(const DecodedInsn& insn, CpuMode mode);

// True for a branch whose FastHandler leaves the block itself when taken
// (Interpreter::BranchOutOfBlock), so the block may go on past it: Jcc in 64-bit mode.
bool ContinuesBlock(const DecodedInsn& insn, CpuMode mode);

}  // namespace vireo::emu
