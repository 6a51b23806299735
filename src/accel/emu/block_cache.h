// Decoded blocks: straight-line runs of 64-bit code decoded once, with their handlers
// already looked up, so the interpreter runs a block's instructions back to back without
// translating the fetch, probing the instruction cache or indexing the dispatch table for
// each one (Interpreter::RunBlocks).
//
// A block starts at a guest-physical address, lies in one 4 KiB page, and ends after its
// first instruction that is not "plain" (EndsBlock): a branch, or anything that may change
// the mode, CS, paging, RFLAGS.TF/IF or the interrupt shadow, or make an exit other than
// MMIO. The one exception is a 64-bit Jcc (ContinuesBlock, fast_handlers.h): its handler
// leaves the block itself when taken. So only the last instruction of a block, or a taken
// Jcc, can redirect execution or change how the next one is fetched; a fault simply leaves
// the block.
//
// Validity comes from the DecodeCache, which keeps the per-page generations that guest
// stores bump (self-modifying code) and the epoch that a cross-vCPU code store or INIT
// bumps: a block records both at build and is stale when either moved. A block is also left
// as soon as a store inside it bumps its own page's generation.
//
// Storage: a direct-mapped table of block headers, and the instructions in one arena filled
// in order. A full arena empties the whole cache (rare: its size is many times a kernel's
// hot code). Records never change while the interpreter runs them: a block is built only at
// a block boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "accel/emu/decode_cache.h"
#include "accel/emu/decoded_insn.h"

namespace vireo::emu {

class Interpreter;
enum class StepStatus : uint8_t;
using Handler = StepStatus (*)(Interpreter&, const DecodedInsn&);

// One instruction of a block: the handler it dispatches to, and its decode.
struct BlockInsn {
  Handler handler;
  DecodedInsn insn;
};

struct Block {
  uint64_t physical = 0;    // of the first instruction; tag 0 with count 0 is empty
  uint64_t epoch = 0;       // DecodeCache epoch at build
  uint32_t generation = 0;  // of the page's DecodeCache slot at build
  uint32_t first = 0;       // index of the first instruction in the arena
  uint16_t count = 0;       // instructions, at least 1 in a valid block
  uint16_t bytes = 0;       // their total length
};

// True when `insn` must be the last of its block (see the header comment).
bool EndsBlock(const DecodedInsn& insn);

class BlockCache {
 public:
  static constexpr size_t kBlocks = 32768;
  static constexpr size_t kArenaInsns = size_t{1} << 17;  // 5 MiB of records
  static constexpr size_t kMaxBlockInsns = 64;

  BlockCache();

  // The valid block starting at `physical` (64-bit mode), or null.
  const Block* Lookup(uint64_t physical, const DecodeCache& decodes) const {
    const Block& b = table_[Index(physical)];
    return b.physical == physical && b.count != 0 && b.epoch == decodes.epoch() &&
                   b.generation == decodes.page_generation(physical >> 12)
               ? &b
               : nullptr;
  }
  // Decodes the block at `physical` from `code` (the bytes from `physical` to the end of its
  // page) with `table`'s handlers. Null when not even the first instruction decodes inside
  // the page (the caller falls back to a single step, which raises what is due).
  const Block* Build(uint64_t physical, const uint8_t* code, size_t len, DecodeCache& decodes,
                     const Handler* table);
  const BlockInsn* insns(const Block& block) const { return &arena_[block.first]; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  static size_t Index(uint64_t physical) {
    return (physical ^ ((physical >> 13) * 0x9e3779b1u)) & (kBlocks - 1);
  }

  std::unique_ptr<Block[], Free> table_;
  std::unique_ptr<BlockInsn[], Free> arena_;
  size_t arena_used_ = 0;
};

}  // namespace vireo::emu
