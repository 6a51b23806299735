// DecodedInsn: one x86 instruction decoded once into a packed record (the blink idea) and
// read through named accessors. The interpreter never looks at instruction bytes again: it
// dispatches on opcode() through a dense table and takes operands from here.
#pragma once

#include <cstdint>

namespace vireo::emu {

// Opcode maps, as the high byte of DecodedInsn::opcode().
enum OpcodeMap : uint16_t {
  kMapOneByte = 0x000,
  kMap0F = 0x100,
  kMap0F38 = 0x200,
  kMap0F3A = 0x300,
};
inline constexpr int kOpcodeCount = 0x400;

// Segment registers in their encoding order (SDM Vol. 2 3.1.1.3, "sreg").
enum Seg : uint8_t { kEs = 0, kCs = 1, kSs = 2, kDs = 3, kFs = 4, kGs = 5 };

// Address-register sentinels for base()/index().
inline constexpr uint8_t kNoReg = 16;
inline constexpr uint8_t kRipReg = 17;  // RIP-relative (64-bit mode, mod=00 rm=101)

// Operand/address sizes as log2 of the byte count: 1 = 16-bit, 2 = 32-bit, 3 = 64-bit.
enum SizeLog : uint8_t { kSize8 = 0, kSize16 = 1, kSize32 = 2, kSize64 = 3 };

// The CPU mode that decides default operand and address sizes.
enum class CpuMode : uint8_t {
  kReal16,       // real mode or a 16-bit protected-mode code segment (CS.D=0)
  kProtected32,  // 32-bit code segment (CS.D=1), legacy or compatibility mode
  kLong64,       // 64-bit mode (EFER.LMA=1, CS.L=1)
};

// Why decoding stopped short of an instruction.
enum class DecodeStatus : uint8_t {
  kOk,
  kTruncated,  // the bytes ran out first: fetch more (a #PF or the next page), or #GP at 15
  kTooLong,    // more than 15 bytes: #GP(0) (SDM Vol. 2 2.3.11)
  kUndefined,  // #UD: reserved opcode, invalid in this mode, or LOCK where not allowed
};

class DecodedInsn {
 public:
  // Opcode identity: map << 8 | final opcode byte.
  uint16_t opcode() const { return opcode_; }
  uint8_t length() const { return length_; }

  // ModRM, with REX.R / REX.B already merged into reg() and rm() (0-15).
  bool has_modrm() const { return has_modrm_; }
  uint8_t modrm() const { return modrm_; }
  uint8_t mod() const { return modrm_ >> 6; }
  uint8_t reg() const { return reg_; }  // also the /digit of group opcodes (0-7 w/o REX.R)
  uint8_t group_op() const { return (modrm_ >> 3) & 7; }
  uint8_t rm() const { return rm_; }
  bool is_reg_form() const { return has_modrm_ && mod() == 3; }
  bool has_memory_operand() const { return has_modrm_ ? mod() != 3 : has_moffs_; }

  // Effective address parts: base and index are 0-15, kNoReg, or kRipReg (base only).
  uint8_t base() const { return base_; }
  uint8_t index() const { return index_; }
  uint8_t scale_log() const { return scale_; }
  int32_t disp() const { return disp_; }
  bool rip_relative() const { return base_ == kRipReg; }
  bool has_sib() const { return has_sib_; }
  // The segment of a memory operand: the override prefix, else DS or SS (BP/SP-based).
  Seg segment() const { return static_cast<Seg>(seg_); }
  bool has_segment_override() const { return seg_override_; }

  // Immediates: imm() is sign-extended to 64 bits where the encoding sign-extends (Ib in
  // ALU group, Jb/Jz, Iz with REX.W) and zero-extended otherwise; imm2() is ENTER's level or
  // a far pointer's selector. For moffs forms imm() is the absolute offset.
  uint64_t imm() const { return imm_; }
  uint16_t imm2() const { return imm2_; }
  uint8_t imm_size() const { return imm_size_; }
  bool has_moffs() const { return has_moffs_; }

  // Sizes after prefixes and mode: operand size (16/32/64) and address size (16/32/64).
  SizeLog operand_size() const { return static_cast<SizeLog>(osize_); }
  SizeLog address_size() const { return static_cast<SizeLog>(asize_); }
  uint8_t operand_bytes() const { return uint8_t(1u << osize_); }

  // Prefixes as seen.
  bool lock() const { return lock_; }
  bool rep() const { return rep_; }      // F3 (REP/REPE), the last of F2/F3 seen
  bool repne() const { return repne_; }  // F2 (REPNE), the last of F2/F3 seen
  bool opsize_prefix() const { return p66_; }
  bool addrsize_prefix() const { return p67_; }
  bool rex() const { return rex_ != 0; }
  bool rex_w() const { return (rex_ & 8) != 0; }
  uint8_t rex_bits() const { return rex_; }
  // SSE mandatory prefix: 0 none, 1 = 66, 2 = F3, 3 = F2 (F2/F3 win over 66, last wins).
  uint8_t mandatory_prefix() const { return mandatory_; }
  uint8_t prefix_count() const { return prefix_count_; }

  bool operator==(const DecodedInsn&) const = default;

 private:
  friend class Decoder;

  uint64_t imm_ = 0;
  int32_t disp_ = 0;
  uint16_t opcode_ = 0;
  uint16_t imm2_ = 0;
  uint8_t length_ = 0;
  uint8_t modrm_ = 0;
  uint8_t reg_ = 0;
  uint8_t rm_ = 0;
  uint8_t base_ = kNoReg;
  uint8_t index_ = kNoReg;
  uint8_t rex_ = 0;
  uint8_t prefix_count_ = 0;
  uint8_t imm_size_ = 0;
  uint8_t scale_ : 2 = 0;
  uint8_t seg_ : 3 = kDs;
  uint8_t osize_ : 2 = kSize32;
  uint8_t asize_ : 2 = kSize64;
  uint8_t mandatory_ : 2 = 0;
  bool has_modrm_ : 1 = false;
  bool has_sib_ : 1 = false;
  bool has_moffs_ : 1 = false;
  bool seg_override_ : 1 = false;
  bool lock_ : 1 = false;
  bool rep_ : 1 = false;
  bool repne_ : 1 = false;
  bool p66_ : 1 = false;
  bool p67_ : 1 = false;
};

static_assert(sizeof(DecodedInsn) <= 32, "DecodedInsn is meant to stay a packed record");

}  // namespace vireo::emu
