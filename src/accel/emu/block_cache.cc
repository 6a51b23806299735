#include "accel/emu/block_cache.h"

#include <array>
#include <cstring>
#include <initializer_list>
#include <new>
#include <utility>

#include "accel/emu/decoder.h"
#include "accel/emu/fast_handlers.h"

namespace vireo::emu {
namespace {

template <typename T>
T* ZeroedArray(size_t n) {
  void* p = std::calloc(n, sizeof(T));
  if (p == nullptr) throw std::bad_alloc();  // set-up time, not the guest path
  return static_cast<T*>(p);
}

using OpcodeSet = std::array<bool, 256>;

constexpr OpcodeSet MakeSet(std::initializer_list<std::pair<int, int>> ranges) {
  OpcodeSet set{};
  for (auto [first, last] : ranges) {
    for (int op = first; op <= last; ++op) set[op] = true;
  }
  return set;
}

// Plain one-byte opcodes in 64-bit mode: register/memory data movement and arithmetic whose
// only effects are GPRs, arithmetic flags, memory (RAM or one MMIO store) and faults. The
// ALU rows 00-3F (forms 0-5 of each) are checked apart.
constexpr OpcodeSet kPlainOneByte = MakeSet({
    {0x50, 0x5f},  // PUSH/POP reg
    {0x63, 0x63},  // MOVSXD
    {0x68, 0x6b},  // PUSH imm, IMUL imm
    {0x80, 0x8b},  // ALU group 1, TEST, XCHG, MOV
    {0x8d, 0x8d},  // LEA
    {0x8f, 0x8f},  // POP r/m
    {0x91, 0x99},  // XCHG rAX, CBW/CWDE/CDQE, CWD/CDQ/CQO
    {0xa8, 0xa9},  // TEST acc, imm
    {0xb0, 0xbf},  // MOV reg, imm
    {0xc0, 0xc1},  // shifts and rotates by imm
    {0xc6, 0xc7},  // MOV r/m, imm
    {0xd0, 0xd3},  // shifts and rotates by 1 and CL
    {0xf6, 0xf7},  // TEST/NOT/NEG/MUL/DIV
    {0xfe, 0xfe},  // INC/DEC r/m8
});

constexpr OpcodeSet kPlain0F = MakeSet({
    {0x1f, 0x1f},  // NOP r/m
    {0x40, 0x4f},  // CMOVcc
    {0x90, 0x9f},  // SETcc
    {0xa3, 0xa3},  // BT r/m, r
    {0xa4, 0xa5},  // SHLD
    {0xab, 0xab},  // BTS r/m, r
    {0xac, 0xad},  // SHRD
    {0xaf, 0xb1},  // IMUL r, r/m; CMPXCHG
    {0xb3, 0xb3},  // BTR r/m, r
    {0xb6, 0xb8},  // MOVZX, POPCNT
    {0xba, 0xbf},  // BT* imm, BTC, BSF/TZCNT, BSR/LZCNT, MOVSX
    {0xc0, 0xc1},  // XADD
    {0xc8, 0xcf},  // BSWAP
});

bool PlainOneByte(const DecodedInsn& insn) {
  const int op = insn.opcode() & 0xff;
  if (op < 0x40) return (op & 7) < 6;  // ADD..CMP r/m,r / r,r/m / acc,imm
  if (op == 0x90) return !insn.rep();  // NOP; PAUSE ends the block (spin loops)
  if (op == 0xff) return insn.group_op() <= 1 || insn.group_op() == 6;  // INC, DEC, PUSH
  return kPlainOneByte[op];
}

}  // namespace

bool EndsBlock(const DecodedInsn& insn) {
  switch (insn.opcode() & 0xff00) {
    case kMapOneByte:
      return !PlainOneByte(insn);
    case kMap0F:
      return !kPlain0F[insn.opcode() & 0xff];
    default:
      return true;
  }
}

BlockCache::BlockCache()
    : table_(ZeroedArray<Block>(kBlocks)), arena_(ZeroedArray<BlockInsn>(kArenaInsns)) {}

const Block* BlockCache::Build(uint64_t physical, const uint8_t* code, size_t len,
                               DecodeCache& decodes, const Handler* table) {
  if (arena_used_ + kMaxBlockInsns > kArenaInsns) {
    // Full: every block goes (their records are about to be reused).
    std::memset(static_cast<void*>(table_.get()), 0, kBlocks * sizeof(Block));
    arena_used_ = 0;
  }
  Block block;
  block.physical = physical;
  block.epoch = decodes.epoch();
  block.generation = decodes.MarkPageDecoded(physical >> 12);
  block.first = static_cast<uint32_t>(arena_used_);
  size_t offset = 0;
  while (block.count < kMaxBlockInsns) {
    DecodedInsn insn;
    // Bytes past the page are not given: an instruction that crosses it does not decode
    // here and is left to a single step (which fetches the next page with its checks).
    if (Decoder::Decode(code + offset, len - offset, CpuMode::kLong64, &insn) !=
        DecodeStatus::kOk) {
      break;
    }
    const Handler fast = FastHandler(insn, CpuMode::kLong64);
    arena_[arena_used_ + block.count] = {fast ? fast : table[insn.opcode()], insn};
    ++block.count;
    offset += insn.length();
    if ((EndsBlock(insn) && !ContinuesBlock(insn, CpuMode::kLong64)) || offset >= len) break;
  }
  if (block.count == 0) return nullptr;
  block.bytes = static_cast<uint16_t>(offset);
  arena_used_ += block.count;
  Block& slot = table_[Index(physical)];
  slot = block;
  return &slot;
}

}  // namespace vireo::emu
