// The x86 instruction decoder: legacy prefixes, REX, the one-byte, 0F, 0F38 and 0F3A maps,
// ModRM/SIB with every addressing mode (16-bit forms included), RIP-relative operands,
// displacements and immediates, into a DecodedInsn. Pure: no allocation, no state, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>

#include "accel/emu/decoded_insn.h"

namespace vireo::emu {

inline constexpr size_t kMaxInsnLength = 15;  // SDM Vol. 2 2.3.11

class Decoder {
 public:
  // Decodes the instruction at bytes[0..available). available may exceed 15; only the first
  // 15 bytes are looked at. On kOk, *out holds the instruction; otherwise its contents are
  // unspecified except length(), which for kUndefined is the length decoded so far.
  static DecodeStatus Decode(const uint8_t* bytes, size_t available, CpuMode mode,
                             DecodedInsn* out);
};

}  // namespace vireo::emu
