// The decoder's view of every opcode: does it take a ModRM byte, which immediate follows,
// and how the mode and prefixes shape it. One dense table of kOpcodeCount entries indexed by
// map << 8 | byte (SDM Vol. 2 Appendix A, "Opcode Map").
#pragma once

#include <array>
#include <cstdint>

#include "accel/emu/decoded_insn.h"

namespace vireo::emu {

enum class ImmKind : uint8_t {
  kNone,
  kIb,      // 8-bit, sign-extended
  kIw,      // 16-bit, zero-extended (RET imm16, far-call selector)
  kIz,      // 16 or 32 bits by operand size, sign-extended to 64 (SDM "Iz")
  kIv,      // 16, 32 or 64 bits by operand size (MOV r, imm: the only imm64)
  kIwIb,    // ENTER: imm16 then imm8 (level in imm2)
  kMoffs,   // MOV AL/rAX <-> moffs: an address-size offset, no ModRM
  kJb,      // rel8, sign-extended
  kJz,      // rel16/rel32, sign-extended
  kGroup3,  // F6/F7: Ib/Iz only for /0 and /1 (TEST)
  kFarPtr,  // Ap: offset (16/32) then a 16-bit selector (legacy modes only)
};

struct OpcodeInfo {
  bool modrm : 1 = false;
  bool invalid64 : 1 = false;       // #UD in 64-bit mode (SDM "i64")
  bool invalid_legacy : 1 = false;  // #UD outside 64-bit mode ("o64" only)
  bool undefined : 1 = false;       // reserved in every mode
  bool default64 : 1 = false;       // 64-bit operand size by default in 64-bit mode ("d64")
  bool branch64 : 1 = false;        // near branch: 64-bit in 64-bit mode ("f64"; AMD honours 66)
  bool byte_op : 1 = false;         // operates on 8-bit operands
  bool modrm_reg_only : 1 = false;  // MOV CR/DR: mod is ignored, rm is always a register
  ImmKind imm = ImmKind::kNone;
};

using OpcodeTable = std::array<OpcodeInfo, kOpcodeCount>;

// The table, built once at compile time.
const OpcodeTable& DecodeTable();

// Whether LOCK may prefix this opcode with this ModRM /digit (SDM Vol. 2 "LOCK"): only
// read-modify-write instructions with a memory destination.
bool LockAllowed(uint16_t opcode, uint8_t group_op);

}  // namespace vireo::emu
