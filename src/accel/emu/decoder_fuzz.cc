// Fuzzes the x86 decoder in every mode. Beyond "no crash, no UB", it checks the decoder's
// contracts: a decoded length is 1..15 and within the bytes given; the same bytes cut to that
// length decode to the same instruction; one byte fewer is kTruncated, never a different
// instruction. (kTooLong may come with fewer than 15 bytes: a REX.W MOV imm64 after ten
// prefixes is known to be too long before its immediate is read.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "accel/emu/decoder.h"

using vireo::emu::CpuMode;
using vireo::emu::DecodedInsn;
using vireo::emu::Decoder;
using vireo::emu::DecodeStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (CpuMode mode : {CpuMode::kLong64, CpuMode::kProtected32, CpuMode::kReal16}) {
    DecodedInsn insn;
    DecodeStatus status = Decoder::Decode(data, size, mode, &insn);
    if (status != DecodeStatus::kOk) continue;
    if (insn.length() == 0 || insn.length() > 15 || insn.length() > size) std::abort();
    if (insn.prefix_count() >= insn.length()) std::abort();
    DecodedInsn again;
    if (Decoder::Decode(data, insn.length(), mode, &again) != DecodeStatus::kOk) std::abort();
    if (!(insn == again)) std::abort();
    if (Decoder::Decode(data, insn.length() - 1, mode, &again) != DecodeStatus::kTruncated)
      std::abort();
  }
  return 0;
}
