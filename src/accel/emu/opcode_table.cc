#include "accel/emu/opcode_table.h"

namespace vireo::emu {
namespace {

constexpr void Set(OpcodeTable& t, int first, int last, OpcodeInfo info) {
  for (int op = first; op <= last; ++op) t[op] = info;
}

constexpr OpcodeInfo M{.modrm = true};
constexpr OpcodeInfo MB{.modrm = true, .byte_op = true};
constexpr OpcodeInfo None{};
constexpr OpcodeInfo Bad{.undefined = true};
constexpr OpcodeInfo I64{.invalid64 = true};

// One-byte map (SDM Vol. 2 Table A-2).
constexpr void BuildOneByte(OpcodeTable& t) {
  // 00-3F: the eight ALU rows, each Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev / AL,Ib / rAX,Iz.
  for (int row = 0; row < 8; ++row) {
    int b = row * 8;
    t[b + 0] = MB;
    t[b + 1] = M;
    t[b + 2] = MB;
    t[b + 3] = M;
    t[b + 4] = {.byte_op = true, .imm = ImmKind::kIb};
    t[b + 5] = {.imm = ImmKind::kIz};
    t[b + 6] = I64;  // PUSH ES/SS; segment prefixes (26/2E/36/3E) never reach the table
    t[b + 7] = I64;  // POP ES/SS/DS, DAA, DAS, AAA, AAS
  }
  t[0x0e] = I64;   // PUSH CS
  t[0x0f] = None;  // two-byte escape, handled by the decoder
  t[0x16] = I64;
  t[0x1e] = I64;
  Set(t, 0x40, 0x4f, None);  // INC/DEC r (legacy); REX prefixes in 64-bit mode
  Set(t, 0x50, 0x5f, {.default64 = true});
  t[0x60] = I64;                                 // PUSHA
  t[0x61] = I64;                                 // POPA
  t[0x62] = {.modrm = true, .invalid64 = true};  // BOUND (EVEX in 64-bit mode)
  t[0x63] = M;                                   // MOVSXD (ARPL legacy)
  t[0x68] = {.default64 = true, .imm = ImmKind::kIz};
  t[0x69] = {.modrm = true, .imm = ImmKind::kIz};
  t[0x6a] = {.default64 = true, .imm = ImmKind::kIb};
  t[0x6b] = {.modrm = true, .imm = ImmKind::kIb};
  t[0x6c] = {.byte_op = true};  // INSB
  t[0x6d] = None;
  t[0x6e] = {.byte_op = true};  // OUTSB
  t[0x6f] = None;
  Set(t, 0x70, 0x7f, {.branch64 = true, .imm = ImmKind::kJb});
  t[0x80] = {.modrm = true, .byte_op = true, .imm = ImmKind::kIb};
  t[0x81] = {.modrm = true, .imm = ImmKind::kIz};
  t[0x82] = {.modrm = true, .invalid64 = true, .byte_op = true, .imm = ImmKind::kIb};
  t[0x83] = {.modrm = true, .imm = ImmKind::kIb};
  t[0x84] = MB;
  t[0x85] = M;
  t[0x86] = MB;
  t[0x87] = M;
  t[0x88] = MB;
  t[0x89] = M;
  t[0x8a] = MB;
  t[0x8b] = M;
  t[0x8c] = M;
  t[0x8d] = M;
  t[0x8e] = M;
  t[0x8f] = {.modrm = true, .default64 = true};  // POP Ev (/0; XOP otherwise on AMD)
  Set(t, 0x90, 0x99, None);
  t[0x9a] = {.invalid64 = true, .imm = ImmKind::kFarPtr};
  t[0x9b] = None;
  t[0x9c] = {.default64 = true};  // PUSHF
  t[0x9d] = {.default64 = true};  // POPF
  t[0x9e] = None;
  t[0x9f] = None;
  t[0xa0] = {.byte_op = true, .imm = ImmKind::kMoffs};
  t[0xa1] = {.imm = ImmKind::kMoffs};
  t[0xa2] = {.byte_op = true, .imm = ImmKind::kMoffs};
  t[0xa3] = {.imm = ImmKind::kMoffs};
  for (int op = 0xa4; op <= 0xaf; op += 2) {
    t[op] = {.byte_op = true};
    t[op + 1] = None;
  }
  t[0xa8] = {.byte_op = true, .imm = ImmKind::kIb};
  t[0xa9] = {.imm = ImmKind::kIz};
  Set(t, 0xb0, 0xb7, {.byte_op = true, .imm = ImmKind::kIb});
  Set(t, 0xb8, 0xbf, {.imm = ImmKind::kIv});
  t[0xc0] = {.modrm = true, .byte_op = true, .imm = ImmKind::kIb};
  t[0xc1] = {.modrm = true, .imm = ImmKind::kIb};
  t[0xc2] = {.branch64 = true, .imm = ImmKind::kIw};
  t[0xc3] = {.branch64 = true};
  t[0xc4] = {.modrm = true, .invalid64 = true};  // LES (VEX3 in 64-bit mode)
  t[0xc5] = {.modrm = true, .invalid64 = true};  // LDS (VEX2)
  t[0xc6] = {.modrm = true, .byte_op = true, .imm = ImmKind::kIb};
  t[0xc7] = {.modrm = true, .imm = ImmKind::kIz};
  t[0xc8] = {.default64 = true, .imm = ImmKind::kIwIb};
  t[0xc9] = {.default64 = true};
  t[0xca] = {.imm = ImmKind::kIw};
  t[0xcb] = None;
  t[0xcc] = None;
  t[0xcd] = {.imm = ImmKind::kIb};
  t[0xce] = I64;  // INTO
  t[0xcf] = None;
  t[0xd0] = MB;
  t[0xd1] = M;
  t[0xd2] = MB;
  t[0xd3] = M;
  t[0xd4] = {.invalid64 = true, .imm = ImmKind::kIb};  // AAM
  t[0xd5] = {.invalid64 = true, .imm = ImmKind::kIb};  // AAD
  t[0xd6] = I64;                                       // SALC (undocumented)
  t[0xd7] = {.byte_op = true};                         // XLAT
  Set(t, 0xd8, 0xdf, M);                               // x87
  Set(t, 0xe0, 0xe3, {.branch64 = true, .imm = ImmKind::kJb});
  t[0xe4] = {.byte_op = true, .imm = ImmKind::kIb};
  t[0xe5] = {.imm = ImmKind::kIb};
  t[0xe6] = {.byte_op = true, .imm = ImmKind::kIb};
  t[0xe7] = {.imm = ImmKind::kIb};
  t[0xe8] = {.branch64 = true, .imm = ImmKind::kJz};
  t[0xe9] = {.branch64 = true, .imm = ImmKind::kJz};
  t[0xea] = {.invalid64 = true, .imm = ImmKind::kFarPtr};
  t[0xeb] = {.branch64 = true, .imm = ImmKind::kJb};
  t[0xec] = {.byte_op = true};
  t[0xed] = None;
  t[0xee] = {.byte_op = true};
  t[0xef] = None;
  t[0xf1] = None;  // INT1
  t[0xf4] = None;
  t[0xf5] = None;
  t[0xf6] = {.modrm = true, .byte_op = true, .imm = ImmKind::kGroup3};
  t[0xf7] = {.modrm = true, .imm = ImmKind::kGroup3};
  Set(t, 0xf8, 0xfd, None);
  t[0xfe] = MB;
  t[0xff] = M;  // /2 /4 /6 are d64/f64: the decoder looks at the /digit
}

// Two-byte map 0F xx (SDM Vol. 2 Table A-3).
constexpr void BuildTwoByte(OpcodeTable& t) {
  constexpr int b = kMap0F;
  Set(t, b + 0x00, b + 0xff, M);  // most of the map: ModRM, no immediate
  t[b + 0x04] = Bad;
  Set(t, b + 0x05, b + 0x09, None);  // SYSCALL CLTS SYSRET INVD WBINVD
  t[b + 0x0a] = Bad;
  t[b + 0x0b] = None;  // UD2
  t[b + 0x0c] = Bad;
  t[b + 0x0e] = Bad;  // FEMMS (3DNow!, absent on this CPU)
  t[b + 0x0f] = Bad;  // 3DNow!
  Set(t, b + 0x20, b + 0x23, {.modrm = true, .default64 = true, .modrm_reg_only = true});
  Set(t, b + 0x24, b + 0x27, Bad);
  Set(t, b + 0x30, b + 0x35, None);  // WRMSR RDTSC RDMSR RDPMC SYSENTER SYSEXIT
  t[b + 0x36] = Bad;
  t[b + 0x37] = Bad;  // GETSEC (Intel SMX)
  t[b + 0x38] = Bad;  // escapes: handled by the decoder
  t[b + 0x39] = Bad;
  t[b + 0x3a] = Bad;
  Set(t, b + 0x3b, b + 0x3f, Bad);
  Set(t, b + 0x70, b + 0x73, {.modrm = true, .imm = ImmKind::kIb});
  t[b + 0x77] = None;  // EMMS
  t[b + 0x78] = Bad;   // VMREAD / SSE4a EXTRQ-INSERTQ: not emulated
  t[b + 0x79] = Bad;
  t[b + 0x7a] = Bad;
  t[b + 0x7b] = Bad;
  Set(t, b + 0x80, b + 0x8f, {.branch64 = true, .imm = ImmKind::kJz});
  Set(t, b + 0x90, b + 0x9f, MB);     // SETcc
  t[b + 0xa0] = {.default64 = true};  // PUSH FS
  t[b + 0xa1] = {.default64 = true};  // POP FS
  t[b + 0xa2] = None;                 // CPUID
  t[b + 0xa4] = {.modrm = true, .imm = ImmKind::kIb};
  t[b + 0xa6] = Bad;
  t[b + 0xa7] = Bad;
  t[b + 0xa8] = {.default64 = true};  // PUSH GS
  t[b + 0xa9] = {.default64 = true};  // POP GS
  t[b + 0xaa] = None;                 // RSM
  t[b + 0xac] = {.modrm = true, .imm = ImmKind::kIb};
  t[b + 0xb0] = MB;
  t[b + 0xba] = {.modrm = true, .imm = ImmKind::kIb};
  t[b + 0xc0] = MB;
  t[b + 0xc2] = {.modrm = true, .imm = ImmKind::kIb};
  Set(t, b + 0xc4, b + 0xc6, {.modrm = true, .imm = ImmKind::kIb});
  Set(t, b + 0xc8, b + 0xcf, None);  // BSWAP
}

// 0F 38 (no immediate) and 0F 3A (imm8): every entry takes ModRM; the interpreter raises
// #UD for the ones it does not implement.
constexpr void BuildThreeByte(OpcodeTable& t) {
  Set(t, kMap0F38, kMap0F38 + 0xff, M);
  Set(t, kMap0F3A, kMap0F3A + 0xff, {.modrm = true, .imm = ImmKind::kIb});
}

constexpr OpcodeTable Build() {
  OpcodeTable t{};
  BuildOneByte(t);
  BuildTwoByte(t);
  BuildThreeByte(t);
  return t;
}

constexpr OpcodeTable kTable = Build();

}  // namespace

const OpcodeTable& DecodeTable() { return kTable; }

bool LockAllowed(uint16_t opcode, uint8_t group_op) {
  if (opcode < 0x40) {
    // ADD OR ADC SBB AND SUB XOR with Eb,Gb / Ev,Gv; not CMP (row 7).
    return (opcode & 7) <= 1 && (opcode >> 3) != 7;
  }
  switch (opcode) {
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
      return group_op != 7;  // not CMP
    case 0x86:
    case 0x87:  // XCHG
      return true;
    case 0xf6:
    case 0xf7:
      return group_op == 2 || group_op == 3;  // NOT NEG
    case 0xfe:
    case 0xff:
      return group_op <= 1;  // INC DEC
    case kMap0F + 0xab:      // BTS
    case kMap0F + 0xb3:      // BTR
    case kMap0F + 0xbb:      // BTC
    case kMap0F + 0xb0:      // CMPXCHG
    case kMap0F + 0xb1:
    case kMap0F + 0xc0:  // XADD
    case kMap0F + 0xc1:
      return true;
    case kMap0F + 0xba:
      return group_op >= 5;  // BTS BTR BTC
    case kMap0F + 0xc7:
      return group_op == 1;  // CMPXCHG8B/16B
    default:
      return false;
  }
}

}  // namespace vireo::emu
